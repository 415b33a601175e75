"""Pre-emption and resume: the run-state checkpoint and the signals that trigger it.

A run directory's ``run_state.pt`` (written atomically, :func:`mlrsnet.io.save` with kind ``run_state``) holds
everything needed to continue a run as if it had never stopped: the model, optimiser, LR driver (MLR-SNet's
carried LSTM state), MLR-SNet and its meta-optimiser, the task's generators (data order), the torch / NumPy /
Python RNG states, the epoch records so far and the byte length of ``metrics.jsonl`` at the time of the save
(so a resumed run can drop lines written after it).

:class:`StopSignals` turns SIGTERM, SIGUSR1 and SIGUSR2 (what SLURM and submitit send before they kill or
requeue a job) and a first Ctrl-C (SIGINT) into a flag that the runner polls after every step; the run then
saves and either hands the signal to the handler that was installed before (submitit's checkpoint-and-requeue)
or stops with :class:`~mlrsnet.errors.RunInterrupted` (exit code 75). A second Ctrl-C interrupts at once.

:class:`Checkpointer` keeps a run directory's ``run_state.pt`` and MLR-SNet snapshots as a run goes, and
recovers from a divergence; :func:`previous_state` finds the state a new start continues from. Every command
trains through :mod:`mlrsnet.engine.runner`, which uses them.
"""

from __future__ import annotations

import signal
import threading
import time
from pathlib import Path
from types import FrameType
from typing import Any

from mlrsnet.checkpoint import SNAPSHOT_DIR, save_mlrsnet
from mlrsnet.engine.build import Run
from mlrsnet.engine.config import RunConfig, TrainConfig
from mlrsnet.engine.fingerprint import RESUMABLE
from mlrsnet.engine.log import RunLogger, WandbSink
from mlrsnet.engine.loop import Diverged, EpochProgress
from mlrsnet.errors import CheckpointError, ConfigError, DivergenceError
from mlrsnet.io import load, save

RUN_STATE = "run_state.pt"


class StopSignals:
    """Context manager: while active, SIGTERM / SIGUSR1 / SIGUSR2 / SIGINT only record that a stop was
    requested (a second SIGINT raises :class:`KeyboardInterrupt`, for a user who will not wait for the
    step to end). Signals can only be handled in the main thread; elsewhere this is a no-op."""

    NAMES = ("SIGTERM", "SIGUSR1", "SIGUSR2", "SIGINT")

    def __init__(self) -> None:
        self.signum: int | None = None
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> StopSignals:
        if threading.current_thread() is threading.main_thread():
            for name in self.NAMES:
                sig = getattr(signal, name, None)
                if sig is not None:
                    self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.signum is None:
            self.signum = signum
        elif signum == signal.SIGINT:
            raise KeyboardInterrupt

    def requested(self) -> bool:
        return self.signum is not None

    @property
    def name(self) -> str:
        return signal.Signals(self.signum).name if self.signum is not None else "none"

    def forward(self) -> None:
        """Hand the received signal to the Python handler installed before this one, if any (under
        submitit, SIGUSR2's handler pickles the job and requeues it, then exits)."""
        previous = self._previous.get(self.signum) if self.signum is not None else None
        if callable(previous) and previous is not signal.default_int_handler:
            previous(self.signum, None)


def load_run_state(path: str | Path) -> dict:
    """Load ``run_state.pt``; a corrupt or foreign file is a one-line :class:`CheckpointError`."""
    try:
        return load(path, "run_state")
    except CheckpointError as e:
        reason = str(e).split(";")[0]
        raise CheckpointError(
            f"cannot resume: {reason}; delete it or pass resume=false to start the run over"
        ) from None


def check_same_config(saved: dict, current: dict, path: Path) -> None:
    """Refuse to resume a run under a different configuration (except the keys of
    :data:`mlrsnet.engine.fingerprint.RESUMABLE` and a longer run, ``epochs``)."""
    skip = RESUMABLE | {"epochs"}
    diff = _first_difference({k: v for k, v in saved.items() if k not in skip},
                             {k: v for k, v in current.items() if k not in skip})
    if diff is not None:
        key, old, new = diff
        raise ConfigError(
            f"{path} was written by a run with {key}={old!r}, this one has {key}={new!r}; use the same "
            "settings to resume, pass resume=false to start over, or choose another hydra.run.dir"
        )


def _first_difference(a: Any, b: Any, prefix: str = "") -> tuple[str, Any, Any] | None:
    if isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(set(a) | set(b), key=str):
            found = _first_difference(a.get(key), b.get(key), f"{prefix}{key}.")
            if found is not None:
                return found
        return None
    return None if a == b else (prefix.rstrip("."), a, b)


def save_run_state(path: Path, payload: dict) -> None:
    save(path, "run_state", payload)


def snapshot_epochs(epochs: int, count: int) -> set[int]:
    """``count`` evenly spaced epochs from 0 (before training) to ``epochs``, at which MLR-SNet's weights
    are kept for :mod:`mlrsnet.plot`."""
    if count <= 0:
        return set()
    if count == 1:
        return {epochs}
    return {round(i * epochs / (count - 1)) for i in range(count)}


def bundle_epochs(epochs: int) -> list[int]:
    """The epochs after which a meta-training run's nets form its transfer bundle: 1, N/2 and N, as the
    reference meta-test's nets of epochs 1, 100 and 200 of 200."""
    return sorted({1, max(1, epochs // 2), epochs})


def previous_state(cfg: RunConfig, plain: dict, path: Path) -> dict | None:
    """The run state to continue from, per ``resume`` (auto / true / false; commands without the key: auto),
    or None to start afresh. A run that has done more epochs than ``epochs`` asks for is refused."""
    resume = cfg.resume if isinstance(cfg, TrainConfig) else "auto"
    if resume is False:
        return None
    if not path.is_file():
        if resume is True:
            raise ConfigError(
                f"resume=true but {path.parent} has no {RUN_STATE}; point hydra.run.dir at the directory of "
                "the run to continue, or drop resume=true to start a new run"
            )
        return None
    saved = load_run_state(path)
    check_same_config(saved["config"], plain, path)
    if saved["epoch"] > cfg.epochs:
        raise ConfigError(f"{path.parent} holds a run with {saved['epoch']} epochs complete; epochs={cfg.epochs} "
                          f"would end it before where it stands: pass epochs={saved['epoch']} or more to go on, "
                          "resume=false to start over, or another directory")
    return saved


class Checkpointer:
    """Keeps a run directory's ``run_state.pt`` and MLR-SNet snapshots, and recovers from divergence."""

    def __init__(self, run_dir: Path, cfg: RunConfig, plain: dict, run: Run, logger: RunLogger,
                 saved: dict | None) -> None:
        self.run_dir, self.cfg, self.plain, self.run, self.logger = run_dir, cfg, plain, run, logger
        self.path = run_dir / RUN_STATE
        self.epochs = cfg.epochs
        train = isinstance(cfg, TrainConfig)
        self.save_every = cfg.save_every if train else 1
        self.snapshots = (snapshot_epochs(self.epochs, cfg.snapshots) if train else set()) | set(
            bundle_epochs(self.epochs))
        self.t0 = time.perf_counter()
        self.wall_before = 0.0 if saved is None else float(saved["wall_time_s"])
        self.rollbacks = 0 if saved is None else int(saved["rollbacks"])

    def wall_time(self) -> float:
        return self.wall_before + time.perf_counter() - self.t0

    def save(self, position: dict) -> None:
        """Save the run at ``position`` (:meth:`mlrsnet.engine.loop.Trainer.position`)."""
        sink = next((s for s in self.logger.sinks if isinstance(s, WandbSink)), None)
        progress = position["progress"]
        save_run_state(self.path, {
            "config": self.plain, "epoch": position["start_epoch"], "global_step": position["global_step"],
            "history": position["history"], "progress": None if progress is None else progress.state_dict(),
            "metrics_bytes": self.logger.position(), "training": self.run.state_dict(),
            "initial_loss": self.run.l0, "wall_time_s": self.wall_time(), "rollbacks": self.rollbacks,
            "wandb_id": None if sink is None else sink.id,
        })

    def snapshot(self, epoch: int) -> None:
        net, task = self.run.net, self.run.task
        if net is not None and epoch in self.snapshots:
            save_mlrsnet(
                self.run_dir / SNAPSHOT_DIR / f"mlrsnet_epoch{epoch:04d}.pt", net, task=task.info.name,
                num_classes=task.info.num_classes, loss_scale=task.info.loss_scale, initial_loss=self.run.l0,
                epoch=epoch, state=net.state,
            )

    def on_epoch_end(self, epoch: int, global_step: int, history: list[dict]) -> None:
        self.snapshot(epoch)
        if epoch % self.save_every == 0 or epoch == self.epochs:
            self.save({"start_epoch": epoch, "global_step": global_step, "history": history, "progress": None})

    def recover(self, d: Diverged) -> dict:
        """After a divergence: roll back to the last good state with a lower LR and return the loop position
        to continue from, or (``on_divergence=stop``, too many rollbacks, or a command without a guard) log it
        and raise a one-line :class:`DivergenceError`."""
        guard = self.cfg.guard if isinstance(self.cfg, TrainConfig) else None
        last = load_run_state(self.path)
        record = {"type": "divergence", "step": d.step, "epoch": d.epoch, "loss": d.loss, "lr": d.lr,
                  "reason": d.reason, "last_good_epoch": last["epoch"]}
        if guard is not None and guard.on_divergence == "rollback" and self.rollbacks < guard.max_rollbacks:
            self.rollbacks += 1
            print(f"diverged at step {d.step} (epoch {d.epoch}): {d.reason}, loss {d.loss:.4g}, lr {d.lr:.4g}; "
                  f"rolled back to the end of epoch {last['epoch']} with the LR x{guard.lr_factor:g} "
                  f"(rollback {self.rollbacks} of at most {guard.max_rollbacks})", flush=True)
            self.run.load_state_dict(last["training"])
            self.run.driver.scale_lr(self.run.optimizer, guard.lr_factor)
            self.logger.rewind(last["metrics_bytes"])
            self.logger.log({**record, "action": "rollback", "lr_factor": guard.lr_factor})
            position = loop_position(last)
            self.save(position)
            return position
        self.logger.log({**record, "action": "stop"})
        knob = "net.gamma" if self.run.net is not None else "optimizer.lr"
        raise DivergenceError(
            f"training diverged at step {d.step} (epoch {d.epoch}): {d.reason}, loss {d.loss:.4g}, lr "
            f"{d.lr:.4g}; the last good state (epoch {last['epoch']}) is kept in {self.path}; lower "
            f"{knob}, or add guard.on_divergence=rollback to restore that state with a lower LR"
        )


def loop_position(state: dict) -> dict:
    """:func:`train_loop`'s keyword arguments that continue from a saved run state."""
    progress = state["progress"]
    return {
        "start_epoch": state["epoch"], "global_step": state["global_step"], "history": state["history"],
        "progress": None if progress is None else EpochProgress.from_state_dict(progress),
    }
