"""Replaying one random-number state several times (line-search trials, AutoLR probes)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager

import torch


def rng_replayer(tensors: list[torch.Tensor]) -> Callable[[], AbstractContextManager[None]]:
    """Capture the CPU RNG state (and the CUDA states of the devices ``tensors`` live on) now.

    Each ``with replay():`` block then runs from exactly that state, and the global state is put
    back on exit, so any number of replays leave the generators as they were.
    """
    devices = sorted({t.device.index or 0 for t in tensors if t.device.type == "cuda"})
    cpu_state = torch.get_rng_state()
    cuda_states = [torch.cuda.get_rng_state(d) for d in devices]

    @contextmanager
    def replay() -> Iterator[None]:
        with torch.random.fork_rng(devices=devices):
            torch.set_rng_state(cpu_state)
            for d, s in zip(devices, cuda_states, strict=True):
                torch.cuda.set_rng_state(s, d)
            yield

    return replay
