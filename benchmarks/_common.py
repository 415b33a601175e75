"""Shared pieces of the benchmarks: configs composed from ``conf/``, one training iteration exactly as
:func:`mlrsnet.engine.loop.train_loop` runs it, and interleaved timing.

Every figure is a ratio against a baseline timed in the same process, in interleaved rounds (each
round times every variant once, in a shuffled order), reported as the median over rounds; a machine
shared with other work slows all variants of a round alike.
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import statistics
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from mlrsnet.engine.config import TrainConfig, parse_config
from mlrsnet.meta.engine import MetaEngine
from mlrsnet.net import MLRSNet
from mlrsnet.schedules.base import LRDriver
from mlrsnet.schedules.drivers import MLRSNetDriver
from mlrsnet.schedules.optim import build_base_optimizer
from mlrsnet.tasks import Task, build_task

# The models of target 1 (and the wide MLP, whose step is not dwarfed by fixed per-op costs): task config
# and the overrides that set the batch (meta batch = batch; digits' meta set holds 100 images).
MODELS: dict[str, tuple[str, list[str]]] = {
    "cnn": ("digits_cnn", ["batch_size=128", "meta.batch_size=128"]),
    "mlp": ("digits_mlp", ["batch_size=128", "meta.batch_size=128"]),
    "mlp1024": ("digits_mlp", ["batch_size=128", "meta.batch_size=128", "+task.model_kwargs.width=1024"]),
    "lstm": ("text_lstm_cpython", ["batch_size=32", "meta.batch_size=32", "task.max_chars=120000"]),
}


def parser(description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--device", default="cpu", help="cpu | cuda")
    p.add_argument("--threads", type=int, default=0, help="torch intra-op threads (0: torch's default)")
    p.add_argument("--rounds", type=int, default=7, help="interleaved timing rounds (median reported)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--clock", default="wall", choices=("wall", "cpu"),
                   help="clock of the headline ratios (cpu: process CPU time, for --threads 1 on a shared CPU)")
    return p


def setup_torch(args: argparse.Namespace) -> torch.device:
    if args.threads:
        torch.set_num_threads(args.threads)
    random.seed(args.seed)
    return torch.device(args.device)


def machine() -> str:
    """One line naming the date, machine and versions, for RESULTS.md."""
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    gpu = f", {torch.cuda.get_device_name()}" if torch.cuda.is_available() else ""
    return (f"{when}; {cpu}, {os.cpu_count()} cores, torch threads {torch.get_num_threads()}{gpu}; "
            f"torch {torch.__version__}, python {platform.python_version()}")


def compose(task: str, overrides: list[str] | None = None) -> TrainConfig:
    """``conf/train.yaml`` + ``conf/task/<task>.yaml`` + overrides, as the typed config of ``python -m
    mlrsnet.train`` (:func:`mlrsnet.engine.config.parse_config`)."""
    from mlrsnet.engine.cli import compose as compose_config

    cfg = parse_config(compose_config("train", [f"+task={task}", *(overrides or [])]), "train")
    assert isinstance(cfg, TrainConfig)
    return cfg


@dataclass
class Trainee:
    """One independent training run: its own task (data order), model, optimiser, and LR machinery."""

    cfg: TrainConfig
    task: Task
    model: nn.Module
    optimizer: torch.optim.Optimizer
    driver: LRDriver
    engine: MetaEngine | None = None
    net: MLRSNet | None = None
    _batches: Iterator[tuple] | None = field(default=None, repr=False)
    _epoch: int = 0

    @property
    def grad_clip(self) -> float | None:
        return self.cfg.grad_clip

    def next_batch(self) -> tuple:
        while True:
            if self._batches is None:
                self._batches = self.task.train_batches(self._epoch)
                self._epoch += 1
            try:
                return next(self._batches)
            except StopIteration:
                self._batches = None

    def iteration(self) -> None:
        """One iteration of :func:`mlrsnet.engine.loop.train_loop`, with a meta step when there is an engine."""
        self.optimizer.zero_grad(set_to_none=True)
        batch = self.next_batch()
        loss = self.task.train_loss(self.model, batch)
        loss.backward()
        if self.grad_clip:
            nn.utils.clip_grad_norm_(self.model.parameters(), self.grad_clip)
        if self.engine is not None:
            self.engine.meta_step(batch, loss)
        self.driver.before_step(loss)
        self.optimizer.step()
        self.driver.after_step(loss)


def make_trainee(cfg: TrainConfig, device: torch.device, seed: int = 0, meta: dict[str, Any] | None = None,
                 driver: Callable[[torch.optim.Optimizer, MLRSNet | None], LRDriver] | None = None) -> Trainee:
    """A fresh run of ``cfg`` (same seed, so the same initial weights and data order for every variant).
    ``meta``: MetaEngine keyword arguments (backend, K, ...) for a meta-training run, driven by
    :class:`MLRSNetDriver`; otherwise ``driver(optimizer, net)`` (default: a fixed LR)."""
    task = build_task(cfg.task, seed, device)
    torch.manual_seed(seed)
    model = task.build_model()
    optimizer = build_base_optimizer(model.parameters(), cfg.optimizer)
    torch.manual_seed(seed + 1)
    net = MLRSNet(gamma=0.1).to(device)
    if meta is not None:
        engine = MetaEngine(net, task, model, optimizer, grad_clip=cfg.grad_clip, **meta)
        return Trainee(cfg, task, model, optimizer, MLRSNetDriver(net, optimizer, task.info.loss_scale), engine, net)
    made = driver(optimizer, net) if driver is not None else LRDriver()
    return Trainee(cfg, task, model, optimizer, made, None, net)



class EpochRun:
    """A training run advanced ``epochs`` epochs per call through the real loop (:func:`train_loop`), with a
    meta step every ``interval`` steps and ``eval_splits`` evaluated after every epoch, as a run does."""

    def __init__(self, trainee: Trainee, interval: int, epochs: int, eval_splits: tuple[str, ...] = ()) -> None:
        self.t, self.interval, self.epochs, self.eval_splits = trainee, interval, epochs, eval_splits
        self.epoch, self.global_step = 0, 0

    def __call__(self) -> None:
        from mlrsnet.engine.loop import LoopConfig, train_loop

        cfg = LoopConfig(epochs=self.epoch + self.epochs, meta_interval=self.interval, progress=False,
                         log_steps=False, eval_splits=self.eval_splits)
        t = self.t
        train_loop(t.task, t.model, t.optimizer, t.driver, cfg, engine=t.engine, start_epoch=self.epoch,
                   global_step=self.global_step)
        self.epoch += self.epochs
        self.global_step += self.epochs * t.task.steps_per_epoch

def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


@dataclass
class Timings:
    """Seconds per call of each variant, per round, on two clocks: wall time, and the CPU time of this
    process (``time.process_time``), which other work on a shared machine does not inflate. CPU time
    stands for wall time only with ``--threads 1`` on the CPU (it sums the time of all threads, spin
    waits included, and misses asynchronous GPU work)."""

    wall: dict[str, list[float]]
    cpu: dict[str, list[float]]

    def on(self, clock: str) -> dict[str, list[float]]:
        return self.cpu if clock == "cpu" else self.wall


def interleaved(variants: dict[str, Callable[[], Any]], rounds: int, device: torch.device,
                warmup: int = 1) -> Timings:
    """Time every variant once per round, in a shuffled order, after ``warmup`` untimed calls of each."""
    for fn in variants.values():
        for _ in range(warmup):
            fn()
    out = Timings({name: [] for name in variants}, {name: [] for name in variants})
    names = list(variants)
    for _ in range(rounds):
        random.shuffle(names)
        for name in names:
            sync(device)
            w0, c0 = time.perf_counter(), time.process_time()
            variants[name]()
            sync(device)
            out.wall[name].append(time.perf_counter() - w0)
            out.cpu[name].append(time.process_time() - c0)
    return out


def ratios(times: dict[str, list[float]], baseline: str) -> dict[str, float]:
    """Median over rounds of (variant time / baseline time in the same round)."""
    base = times[baseline]
    return {name: statistics.median(t / b for t, b in zip(ts, base, strict=True)) for name, ts in times.items()}


def total_ratios(times: dict[str, list[float]], baseline: str) -> dict[str, float]:
    """Total time of each variant over all rounds / the baseline's total (for variants whose work
    differs from round to round, such as a meta step every k iterations)."""
    base = sum(times[baseline])
    return {name: sum(ts) / base for name, ts in times.items()}


def median(xs: list[float]) -> float:
    return statistics.median(xs)


def repeat(fn: Callable[[], Any], n: int) -> Callable[[], None]:
    def run() -> None:
        for _ in range(n):
            fn()

    return run

