"""Shared test helpers: compose the real Hydra config, run the real command line."""

from __future__ import annotations

import copy
import functools
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from mlrsnet.engine.cli import compose as compose_config

REPO = Path(__file__).resolve().parents[1]


def run_cli(args: list[str], cwd: Path, timeout: float = 300, env: dict | None = None) -> subprocess.CompletedProcess:
    """Run ``python -m <args>`` in a subprocess, as a user would."""
    full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", *args], cwd=cwd, capture_output=True, text=True, timeout=timeout, env=full_env
    )


@functools.cache
def _composed(config_name: str, overrides: tuple[str, ...]) -> Any:
    return compose_config(config_name, list(overrides))


def compose(config_name: str = "train", overrides: list[str] | None = None) -> Any:
    """:func:`mlrsnet.engine.cli.compose`, composed once per (config, overrides) in a test session (a Hydra
    compose costs about a second on a busy machine); each caller gets its own deep copy to change."""
    return copy.deepcopy(_composed(config_name, tuple(overrides or ())))


@pytest.fixture
def compose_cfg():
    return compose


def warm_up(task, model, opt, warm_steps: int, clip: float | None = None):
    """Take ``warm_steps`` real steps so the optimiser state is non-trivial, then leave the next
    batch's gradient in ``.grad`` (clipped if asked), as right before ``optimizer.step()``.
    Returns ``(batch, loss)``."""
    import torch

    batches = task.train_batches(0)
    for _ in range(warm_steps):
        opt.zero_grad()
        task.train_loss(model, next(batches)).backward()
        opt.step()
    batch = next(batches)
    opt.zero_grad()
    loss = task.train_loss(model, batch)
    loss.backward()
    if clip:
        torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
    return batch, loss


@pytest.fixture(scope="session")
def built_wheel(tmp_path_factory) -> Path:
    """The project's wheel, built once per session (``pip wheel --no-deps``) for the install tests."""
    dist = tmp_path_factory.mktemp("dist")
    subprocess.run([sys.executable, "-m", "pip", "wheel", str(REPO), "--no-deps", "--no-build-isolation", "-q",
                    "-w", str(dist)], check=True, capture_output=True, timeout=300)
    return next(dist.glob("mlrsnet-*.whl"))


def signal_at(monkeypatch, call: int, signum: int = signal.SIGTERM) -> None:
    """Deliver a real ``signum`` to this process at the ``call``-th poll of the stop flag (the runner polls
    after every step)."""
    from mlrsnet.engine.resume import StopSignals

    real = StopSignals.requested
    calls = {"n": 0}

    def requested(self: StopSignals) -> bool:
        calls["n"] += 1
        if calls["n"] == call:
            os.kill(os.getpid(), signum)
        return real(self)

    monkeypatch.setattr(StopSignals, "requested", requested)
