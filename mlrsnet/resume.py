"""Pre-emption and resume: the run-state checkpoint and the signals that trigger it.

A run directory's ``run_state.pt`` (written atomically, :func:`mlrsnet.checkpoint.save` with kind
``run_state``) holds everything needed to continue a run as if it had never stopped: the model,
optimiser, LR driver (MLR-SNet's carried LSTM state), MLR-SNet and its meta-optimiser, the task's
generators (data order), the torch / NumPy / Python RNG states, the epoch records so far and the byte
length of ``metrics.jsonl`` at the time of the save (so a resumed run can drop lines written after it).

:class:`StopSignals` turns SIGTERM, SIGUSR1 and SIGUSR2 (what SLURM and submitit send before they kill or
requeue a job) into a flag that the training loop polls after every step; the run then saves and
either hands the signal to the handler that was installed before (submitit's checkpoint-and-requeue)
or stops with :class:`~mlrsnet.errors.RunInterrupted` (exit code 75).
"""

from __future__ import annotations

import random
import signal
import threading
from pathlib import Path
from types import FrameType
from typing import Any

import numpy as np
import torch

from mlrsnet.checkpoint import load, save
from mlrsnet.errors import CheckpointError, ConfigError

RUN_STATE = "run_state.pt"

# Keys that may differ between a run and its resumption: they change how a run is shown, logged,
# guarded, where it reads its data or how long it goes on, not the numbers it produced so far.
RESUMABLE_KEYS = ("progress", "resume", "logger", "save_every", "snapshots", "guard", "device", "epochs",
                  "data", "copy_to_checkpoints", "checkpoints_dir")


class StopSignals:
    """Context manager: while active, SIGTERM / SIGUSR1 / SIGUSR2 only record that a stop was
    requested. Signals can only be handled in the main thread; elsewhere this is a no-op."""

    NAMES = ("SIGTERM", "SIGUSR1", "SIGUSR2")

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

    def requested(self) -> bool:
        return self.signum is not None

    @property
    def name(self) -> str:
        return signal.Signals(self.signum).name if self.signum is not None else "none"

    def forward(self) -> None:
        """Hand the received signal to the Python handler installed before this one, if any (under
        submitit, SIGUSR2's handler pickles the job and requeues it, then exits)."""
        previous = self._previous.get(self.signum) if self.signum is not None else None
        if callable(previous):
            previous(self.signum, None)


def rng_states() -> dict:
    """The global RNG states: torch CPU (dropout), CUDA (all devices), NumPy and Python."""
    out = {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()}
    if torch.cuda.is_available():
        out["cuda"] = torch.cuda.get_rng_state_all()
    return out


def set_rng_states(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


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
    """Refuse to resume a run under a different configuration (except :data:`RESUMABLE_KEYS`)."""
    diff = _first_difference({k: v for k, v in saved.items() if k not in RESUMABLE_KEYS},
                             {k: v for k, v in current.items() if k not in RESUMABLE_KEYS})
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
