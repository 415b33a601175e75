"""Spiking-network tasks (FastSpiker's testbed at CPU scale): spike-coded digits, synthetic event-camera
digits, and the N-MNIST event dataset read from its on-disk format.

- ``snn_digits``: scikit-learn's 8x8 digits, each pixel intensity x in [0, 1] coded into spike trains over
  ``time_steps`` T steps. ``encoding: rate`` (default): a Bernoulli spike with probability x at every step,
  drawn once from the task's split seed, so every run sees the same spike trains; ``encoding: latency``: a
  pixel spikes once, at step ``round((1 - x) (T - 1))``, and pixels below ``latency_threshold`` never spike
  (snnTorch's ``spikegen.latency`` with ``linear=True, normalize=True, clip=True``). Latency coding is the
  sparser code and learns far slower here (test accuracy 0.33 after 3 epochs at a fixed LR, against 0.88
  for rate coding).
- ``snn_events``: a stand-in for event-camera data (N-MNIST, NCARS) that cannot be downloaded here. Each
  digit is moved along a small random saccade of integer pixel shifts (edge-replicated, so a constant image
  stays constant); like a DVS pixel, each pixel emits an ON event when its log intensity rises by more than
  ``event_threshold`` between two positions and an OFF event when it falls by more. Events are binned into
  ``time_steps`` frames of two channels (ON, OFF): input ``[T, 2, 8, 8]``.
- ``nmnist``: N-MNIST (Orchard et al. 2015) from its binary files, ``ROOT/NMNIST/{Train,Test}/<digit>/*.bin``
  (``ROOT`` is ``data.root``; nothing is downloaded)
  (as ``tonic.datasets.NMNIST`` lays them out), read with ``tonic.io.read_mnist_file`` and binned into
  ``time_steps`` frames of 2 x 34 x 34.

Every task is a :class:`~mlrsnet.tasks.base.ClassificationTask` over pre-encoded spike tensors, so every
schedule, the meta engine and the bench run on it unchanged; evaluation adds ``spike_rate``, the fraction
of hidden neurons that spike per time step. snnTorch and tonic are the optional extra ``[snn]``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from mlrsnet.errors import ConfigError, DataMissingError
from mlrsnet.tasks.base import ClassificationConfig, ClassificationTask, TaskInfo
from mlrsnet.tasks.models.snn import snntorch
from mlrsnet.tasks.offline import DigitsConfig, split_classification, stratified_holdout
from mlrsnet.tasks.registry import register_dataset
from mlrsnet.typed import setting


@dataclass(kw_only=True)
class SpikeDigitsConfig(DigitsConfig):
    """Spike-coded digits."""

    time_steps: int = setting(16, "time steps of the spike trains", ge=2)
    encoding: str = setting("rate", "rate (Bernoulli spikes, p = intensity; seeded by split_seed) | latency (one "
                            "spike per pixel, brighter earlier)", choices=("rate", "latency"))
    latency_threshold: float = setting(0.01, "latency coding: pixels below it never fire", ge=0)


@dataclass(kw_only=True)
class EventDigitsConfig(DigitsConfig):
    """Synthetic event-camera digits."""

    time_steps: int = setting(16, "time steps of the event stream", ge=2)
    event_threshold: float = setting(0.15, "log-intensity change that fires an event", gt=0)
    max_shift: int = setting(1, "saccade amplitude in pixels", ge=0)


@dataclass(kw_only=True)
class NMNISTConfig(ClassificationConfig):
    """N-MNIST from disk."""

    data_root: str | None = setting(None, "where N-MNIST is read from (the run's data.root)")
    time_steps: int = setting(16, "time bins of the event stream", ge=2)

NMNIST_SENSOR = (34, 34, 2)


class SpikingTask(ClassificationTask):
    """A classification task over spike trains; :meth:`evaluate` adds the hidden layers' spike rate."""

    def evaluate(self, model: nn.Module, split: str = "test") -> dict[str, float]:
        counting = hasattr(model, "reset_spike_counts")
        if counting:
            model.reset_spike_counts()
        out = super().evaluate(model, split)
        if counting:
            spikes, neuron_steps = model.spike_counts
            out["spike_rate"] = float(spikes) / max(1, neuron_steps)
        return out


def latency_encode(x: torch.Tensor, time_steps: int, threshold: float = 0.01) -> torch.Tensor:
    """``[N, ...]`` intensities in [0, 1] -> ``[N, T, ...]`` spikes: one spike per pixel at step
    ``round((1 - x)(T - 1))``, none for pixels below ``threshold`` (snnTorch ``spikegen.latency``)."""
    snntorch()
    from snntorch import spikegen

    spikes = spikegen.latency(x, num_steps=time_steps, normalize=True, linear=True, clip=True,
                              threshold=threshold)
    return spikes.transpose(0, 1).contiguous()


def rate_encode(x: torch.Tensor, time_steps: int, generator: torch.Generator) -> torch.Tensor:
    """``[N, ...]`` intensities in [0, 1] -> ``[N, T, ...]`` Bernoulli spikes with probability x per step,
    drawn from ``generator`` (snnTorch's ``spikegen.rate`` draws from the global generator)."""
    probs = x.clamp(0, 1).unsqueeze(1).expand(x.shape[0], time_steps, *x.shape[1:])
    return torch.bernoulli(probs, generator=generator)


def _shift(img: torch.Tensor, dy: torch.Tensor, dx: torch.Tensor) -> torch.Tensor:
    """Every image of ``img`` ([N, H, W]) moved by its own (dy[n], dx[n]) pixels, borders replicated (so a
    constant image stays constant)."""
    n, h, w = img.shape
    rows = (torch.arange(h) - dy[:, None]).clamp(0, h - 1)
    cols = (torch.arange(w) - dx[:, None]).clamp(0, w - 1)
    return img[torch.arange(n)[:, None, None], rows[:, :, None], cols[:, None, :]]


def saccade_events(images: torch.Tensor, time_steps: int, generator: torch.Generator,
                   threshold: float = 0.15, max_shift: int = 1) -> torch.Tensor:
    """Synthetic DVS events of ``images`` ([N, H, W] in [0, 1]) moved along a random saccade.

    Every image follows its own path of ``time_steps`` integer positions, each a random step of at most one
    pixel per axis from the last, kept within ``[-max_shift, max_shift]`` of the start. Between two
    positions, a pixel whose log intensity ``ln(0.1 + x)`` rose by more than ``threshold`` emits an ON
    event, one whose log intensity fell by more emits an OFF event. Returns ``[N, T, 2, H, W]`` (ON, OFF)."""
    n = images.shape[0]
    log_i = torch.log(0.1 + images.clamp(0, 1))
    steps = torch.randint(-1, 2, (n, time_steps, 2), generator=generator)
    pos = steps.cumsum(1).clamp(-max_shift, max_shift)
    frames = torch.zeros(n, time_steps, 2, *images.shape[1:])
    prev = log_i
    for t in range(time_steps):
        cur = _shift(log_i, pos[:, t, 0], pos[:, t, 1])
        diff = cur - prev
        frames[:, t, 0] = (diff > threshold).float()
        frames[:, t, 1] = (diff < -threshold).float()
        prev = cur
    return frames


def read_nmnist(path: str | Path, time_steps: int) -> torch.Tensor:
    """One N-MNIST ``.bin`` file -> ``[T, 2, 34, 34]`` event counts per (time bin, polarity, y, x).

    The file is read with ``tonic.io.read_mnist_file``. The events are binned here into ``time_steps``
    equal spans of ``[t_first, t_last]``, every event counted once: tonic 1.7's ``ToFrame(n_time_bins=T)``
    drops the events at the last timestamp."""
    try:
        import tonic
    except ImportError:
        raise ConfigError('the N-MNIST loader needs tonic: pip install -e ".[snn]"') from None
    dtype = np.dtype([("x", int), ("y", int), ("t", int), ("p", int)])
    events = tonic.io.read_mnist_file(str(path), dtype=dtype)
    width, height, polarities = NMNIST_SENSOR
    frames = np.zeros((time_steps, polarities, height, width), dtype=np.float32)
    if len(events):
        t = events["t"] - events["t"].min()
        bins = np.minimum(t * time_steps // (int(t.max()) + 1), time_steps - 1)
        np.add.at(frames, (bins, events["p"], events["y"], events["x"]), 1.0)
    return torch.from_numpy(frames)


def load_nmnist(root: str | Path, time_steps: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(train_x, train_y, test_x, test_y)`` of N-MNIST under ``root``, frames ``[N, T, 2, 34, 34]``."""
    base = Path(root) / "NMNIST"
    out = []
    for folder in ("Train", "Test"):
        files = sorted((base / folder).glob("*/*.bin"))
        if not files:
            raise DataMissingError(
                f"N-MNIST is not under {base / folder} (<digit>/*.bin files); download it elsewhere with "
                f"tonic.datasets.NMNIST(save_to='{root}') and copy it here, or set data.root to where it is"
            )
        out.append(torch.stack([read_nmnist(f, time_steps) for f in files]))
        out.append(torch.tensor([int(f.parent.name[-1]) for f in files], dtype=torch.long))
    return out[0], out[1], out[2], out[3]


def _task(cfg: ClassificationConfig, x: torch.Tensor, y: torch.Tensor, test_x: torch.Tensor, test_y: torch.Tensor,
          seed: int, device: torch.device) -> SpikingTask:
    data = split_classification(x, y, test_x, test_y, 10, cfg, seed, device)
    return SpikingTask(TaskInfo(name=cfg.name, num_classes=10), data, cfg.model, cfg.model_kwargs, cfg.batch_size,
                       cfg.meta_batch_size, seed)


def _digits(cfg: DigitsConfig) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    from sklearn.datasets import load_digits

    d = load_digits()
    x = torch.tensor(d.images, dtype=torch.float32) / 16.0
    y = torch.tensor(d.target, dtype=torch.long)
    rest, test = stratified_holdout(y, cfg.test_fraction, 10, seed=1234)
    return x[rest], y[rest], x[test], y[test]


@register_dataset("snn_digits", SpikeDigitsConfig)
def build_snn_digits(cfg: SpikeDigitsConfig, seed: int, device: torch.device) -> SpikingTask:
    """Spike-coded digits (see the module docstring), input ``[T, 1, 8, 8]``."""
    x, y, tx, ty = _digits(cfg)
    t = cfg.time_steps
    if cfg.encoding == "latency":
        enc = [latency_encode(v.unsqueeze(1), t, cfg.latency_threshold) for v in (x, tx)]
    else:
        g = torch.Generator().manual_seed(cfg.split_seed + 31)
        enc = [rate_encode(v.unsqueeze(1), t, g) for v in (x, tx)]
    return _task(cfg, enc[0], y, enc[1], ty, seed, device)


@register_dataset("snn_events", EventDigitsConfig)
def build_snn_events(cfg: EventDigitsConfig, seed: int, device: torch.device) -> SpikingTask:
    """Synthetic event-camera digits (see the module docstring), input ``[T, 2, 8, 8]``."""
    x, y, tx, ty = _digits(cfg)
    t = cfg.time_steps
    g = torch.Generator().manual_seed(cfg.split_seed + 37)
    kw = {"threshold": cfg.event_threshold, "max_shift": cfg.max_shift}
    return _task(cfg, saccade_events(x, t, g, **kw), y, saccade_events(tx, t, g, **kw), ty, seed, device)


@register_dataset("nmnist", NMNISTConfig)
def build_nmnist(cfg: NMNISTConfig, seed: int, device: torch.device) -> SpikingTask:
    """N-MNIST from ``data.root`` (see the module docstring), input ``[T, 2, 34, 34]``."""
    if not cfg.data_root:
        raise ConfigError(f"task {cfg.name!r} needs task.data_root: set data.root=PATH")
    x, y, tx, ty = load_nmnist(Path(cfg.data_root).expanduser(), cfg.time_steps)
    return _task(cfg, x, y, tx, ty, seed, device)
