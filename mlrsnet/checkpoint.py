"""MLR-SNet files: nets, bundles, the authors' published nets, shipped names.

Written as versioned, atomic files (:mod:`mlrsnet.io`): every failure to read one is a one-line
:class:`CheckpointError`.

MLR-SNet files come in three shapes, all read by :func:`load_nets`:

- one net (kind ``mlrsnet``, :func:`save_mlrsnet`);
- a bundle (kind ``mlrsnet_bundle``, :func:`save_bundle`): the nets of one meta-training run after
  epochs 1, N/2 and N, each with its gamma, epoch and architecture, as the paper's meta-test uses them;
- the authors' own ``.pth`` files (github.com/xjtushujun/MLR-SNet, MIT): a plain state dict with keys
  ``layer1.fc_i2h.*``, ``layer1.fc_h2h.*`` and ``layer3.*``, recognised by those keys. They carry no gamma;
  it is set to 1 (the paper recomputes gamma on the task anyway).

**Readings of the authors' nets.** Their files hold weights only, and the reference code has two cells that
read them differently (:mod:`mlrsnet.net`): ``meta_test`` (``meta-test/model/network.py``, the code that
loads these files: no forget-gate shift, gate rows input, forget, candidate, output) and ``meta_train``
(``meta-train/image-classification/module.py``: forget gate shifted by -1, rows input, forget, output,
candidate). ``reading="auto"`` (the default) reads them as the meta-test code does: that reading, not the
other, reproduces the authors' own CIFAR-10 log (nets 100 and 200 settle at about 0.036 and 0.018 of gamma,
the log's LR at about 0.040 and 0.027 of it; ``tests/test_reference_nets.py``). ``reading="meta_train"``
is the other reading, kept as an option. The weights are never reordered: a reading is the cell's
``forget_bias`` and ``gate_order`` (:data:`READINGS`), so the shipped conversion
(``paper_cifar10_resnet18``, marked ``reference_weights``) takes either reading too. Nets meta-trained here
load as they were trained (the meta-train cell), whatever the reading; asking them for ``meta_test`` is an
error.

Shipped checkpoints live inside the package (``mlrsnet/checkpoints/<name>.pt``, found with
:mod:`importlib.resources`, so a non-editable install has them) and are selected by their short name
(``checkpoint=paper_cifar10_resnet18``): a name without a directory or a suffix is always a shipped one,
so no file in the working directory can stand in for it (write ``./name`` to mean a local file).
"""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path
from typing import Any

import torch

from mlrsnet.errors import CheckpointError
from mlrsnet.io import check_header, read_torch, save
from mlrsnet.net import MLRSNet, MLRSNetConfig

SNAPSHOT_DIR = "snapshots"  # a meta-training run's MLR-SNet at a few epochs: snapshots/mlrsnet_epochNNNN.pt
BUNDLE_FILE = "mlrsnet_bundle.pt"  # a meta-training run's nets after epochs 1, N/2 and N
# The default of mlrsnet.transfer and MLRSNetScheduler: meta-trained on CPU (checkpoints/README.md).
DEFAULT_CHECKPOINT = "digits_cnn_sym40"
# The cell of each reading of the authors' weights (rows as in their files): see the module docstring.
READINGS = {"meta_test": {"forget_bias": 0.0, "gate_order": "ifgo"},
            "meta_train": {"forget_bias": -1.0, "gate_order": "ifog"}}
READING_CHOICES = ("auto", *READINGS)
# The authors' state-dict keys and our module names.
_REFERENCE_KEYS = {
    "layer1.fc_i2h.0.weight": "ih.0.weight", "layer1.fc_i2h.0.bias": "ih.0.bias",
    "layer1.fc_i2h.2.weight": "ih.2.weight", "layer1.fc_i2h.2.bias": "ih.2.bias",
    "layer1.fc_h2h.0.weight": "hh.0.weight", "layer1.fc_h2h.0.bias": "hh.0.bias",
    "layer1.fc_h2h.2.weight": "hh.2.weight", "layer1.fc_h2h.2.bias": "hh.2.bias",
    "layer3.weight": "head.weight", "layer3.bias": "head.bias",
}


def save_mlrsnet(path: str | os.PathLike, net: MLRSNet, **meta: Any) -> None:
    """Save an MLR-SNet: weights, architecture, gamma, plus metadata (task, config, versions...)."""
    save(
        path,
        "mlrsnet",
        {
            "net_config": net.config.to_dict(),
            "state_dict": {k: v.detach().cpu() for k, v in net.state_dict().items()},
            "gamma": float(net.gamma),
            **meta,
        },
    )


def cell_of(config: MLRSNetConfig) -> str | None:
    """The reference cell a net's config is: ``meta_train`` (forget gate shifted by -1, as every net
    meta-trained here), ``meta_test`` (no shift), or None."""
    return {-1.0: "meta_train", 0.0: "meta_test"}.get(float(config.forget_bias))


def _check_reading(reading: str) -> None:
    if reading not in READING_CHOICES:
        raise CheckpointError(f"reading={reading!r} is not one of {', '.join(READING_CHOICES)}; set reading=auto")


def _build_net(entry: dict, path: Path | str, reading: str = "auto") -> MLRSNet:
    try:
        net_config = {**entry["net_config"], **READINGS.get(reading, {})}
        net = MLRSNet(MLRSNetConfig(**net_config), gamma=entry["gamma"])
        net.load_state_dict(entry["state_dict"])
    except (KeyError, TypeError, ValueError, RuntimeError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise CheckpointError(
            f"checkpoint {path} does not match the MLR-SNet architecture ({first}); "
            "it was written by an incompatible version or edited by hand"
        ) from None
    return net


def is_reference_state_dict(obj: Any) -> bool:
    """Whether ``obj`` is a state dict in the authors' format (their published ``mlr_snet *.pth``)."""
    return isinstance(obj, dict) and "format" not in obj and set(_REFERENCE_KEYS) <= set(obj)


def from_reference_state_dict(state: dict, reading: str = "meta_test") -> MLRSNet:
    """An :class:`MLRSNet` with the weights of an authors'-format state dict, unchanged, read as ``reading``
    (:data:`READINGS`: ``meta_test``, as their meta-test code loads these files, or ``meta_train``); gamma 1.
    Hidden size and MLP width are read off the shapes."""
    if reading not in READINGS:
        raise CheckpointError(f"reading={reading!r} of the authors' nets is not one of {', '.join(READINGS)}")
    hidden = int(state["layer3.weight"].shape[1])
    width = int(state["layer1.fc_h2h.0.weight"].shape[0])
    inputs = int(state["layer1.fc_i2h.0.weight"].shape[1])
    net = MLRSNet(MLRSNetConfig(hidden_size=hidden, input_size=inputs, mlp_ratio=width / hidden, **READINGS[reading]),
                  gamma=1.0)
    ours = {mine: state[theirs].detach().to(torch.float32).clone() for theirs, mine in _REFERENCE_KEYS.items()}
    ours["gamma"] = torch.tensor(1.0)
    net.load_state_dict(ours)
    return net


def save_bundle(path: str | os.PathLike, nets: list[MLRSNet], epochs: list[int], **meta: Any) -> None:
    """Save the nets of one meta-training run (after ``epochs``) as one file, each with its gamma and
    architecture: the transfer bundle of the paper's meta-test (nets swapped at equal fractions)."""
    if len(nets) != len(epochs) or not nets:
        raise ValueError("save_bundle needs one epoch per net, and at least one net")
    save(path, "mlrsnet_bundle", {
        "nets": [{"net_config": n.config.to_dict(), "gamma": float(n.gamma), "epoch": int(e),
                  "state_dict": {k: v.detach().cpu() for k, v in n.state_dict().items()}}
                 for n, e in zip(nets, epochs, strict=True)],
        **meta,
    })


def load_nets(path: str | os.PathLike, map_location: str | torch.device = "cpu",
              reading: str = "auto") -> tuple[list[MLRSNet], dict]:
    """Every net of an MLR-SNet file: one net, a bundle (in epoch order) or an authors' ``.pth``;
    returns ``(nets, metadata)``. ``reading`` applies to the authors' nets (their ``.pth``, or a conversion
    marked ``reference_weights``): ``auto`` is ``meta_test``, as their meta-test code reads them, unless the
    conversion records another; see the module docstring. Nets meta-trained here load as they were trained;
    ``reading="meta_test"`` on them is an error. A file in none of these formats is a one-line
    CheckpointError."""
    _check_reading(reading)
    path = Path(path)
    if path.is_dir():
        raise CheckpointError(f"checkpoint {path} is a directory, not a file; pass the .pt file in it, e.g. "
                              f"checkpoint={path / BUNDLE_FILE} (a training run's bundle) or {path / 'mlrsnet.pt'}")
    obj = read_torch(path, "cpu")
    if is_reference_state_dict(obj):
        chosen = "meta_test" if reading == "auto" else reading
        net = from_reference_state_dict(obj, chosen)
        return [net.to(map_location)], {"source": "reference", "file": str(path), "reading": chosen}
    obj = check_header(obj, path, ("mlrsnet", "mlrsnet_bundle"))
    if obj["kind"] == "mlrsnet":
        entries = [obj]
    else:
        entries = obj.get("nets") or []
        if not entries:
            raise CheckpointError(f"bundle {path} holds no nets; re-create it with python -m mlrsnet.train")
    authors = bool(obj.get("reference_weights"))
    nets = [_build_net(e, path, reading if authors else "auto").to(map_location) for e in entries]
    cells = {cell_of(n.config) for n in nets}
    if not authors and reading != "auto" and cells != {reading}:
        raise CheckpointError(
            f"checkpoint {path} holds nets meta-trained with the {'/'.join(sorted(map(str, cells)))} cell; a file "
            f"loads as it was trained, and reading={reading} applies to the authors' nets only: set reading=auto"
        )
    meta = {k: v for k, v in obj.items() if k not in ("state_dict", "nets")}
    meta["reading"] = cell_of(nets[0].config) if authors else "as_trained"
    if obj["kind"] == "mlrsnet_bundle":
        meta["epochs"] = [int(e.get("epoch", -1)) for e in entries]
        meta["gammas"] = [float(e["gamma"]) for e in entries]
    return nets, meta


def load_mlrsnet(path: str | os.PathLike, map_location: str | torch.device = "cpu",
                 reading: str = "auto") -> tuple[MLRSNet, dict]:
    """Rebuild one MLR-SNet from a checkpoint (ours, or the authors' ``.pth``, read as ``reading``: see
    :func:`load_nets`); returns ``(net, metadata)``. A bundle holds several nets: read it with :func:`load_nets`."""
    nets, meta = load_nets(path, map_location, reading)
    if len(nets) != 1:
        raise CheckpointError(f"{path} is a bundle of {len(nets)} nets; read it with "
                              "mlrsnet.checkpoint.load_nets, or pass it as checkpoint= (swapped at equal fractions)")
    return nets[0], meta


def shipped_dir() -> Path:
    """The package folder of the shipped checkpoints (``mlrsnet/checkpoints``)."""
    return Path(str(resources.files("mlrsnet") / "checkpoints"))


def shipped_checkpoints() -> list[str]:
    """The short names of the shipped checkpoints."""
    root = shipped_dir()
    return sorted(p.stem for p in root.glob("*.pt")) if root.is_dir() else []


def resolve_checkpoint(value: str | os.PathLike | None) -> Path:
    """The absolute file a ``checkpoint`` argument names: ``None`` is :data:`DEFAULT_CHECKPOINT`; a bare
    name (no directory, no suffix) is a shipped checkpoint, never a file of the working directory; anything
    else is a path."""
    text = DEFAULT_CHECKPOINT if value is None else os.fspath(value)
    p = Path(text).expanduser()
    if p.name == text and not p.suffix:
        shipped = shipped_dir() / f"{text}.pt"
        if not shipped.is_file():
            raise CheckpointError(
                f"no shipped checkpoint named {text!r}; use one of: {', '.join(shipped_checkpoints()) or 'none'}, "
                f"or a path (./{text} for a file in the working directory)"
            )
        return shipped.resolve()
    return p.resolve()


def is_shipped(path: str | os.PathLike) -> bool:
    """Whether ``path`` is (or would overwrite) a shipped checkpoint."""
    target = Path(path).resolve()
    return target.parent == shipped_dir().resolve()
