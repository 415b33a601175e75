"""The run builder: a composed config -> a seeded run (task, model, optimiser, LR driver, meta engine).

Every entry point (:mod:`mlrsnet.train`, :mod:`mlrsnet.transfer`, :mod:`mlrsnet.bench`) builds its runs
here and hands them to :func:`mlrsnet.loop.train_loop`; none of them imports another. The order of
construction is fixed, so one seed means one split, label noise, data order and initialisation whatever
the schedule::

    cfg -> validate -> seed -> task -> model (+ speed options) -> base optimiser -> L0
        -> schedule: the meta-trained MLR-SNet and its MetaEngine (schedule=mlrsnet),
                     a frozen MLR-SNet (transfer), or any baseline (mlrsnet.schedules.drivers)
        -> Run  ->  Run.loop_config()  ->  train_loop
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np
import torch

from mlrsnet.checkpoint import file_sha256, resolve_checkpoint
from mlrsnet.errors import ConfigError
from mlrsnet.loop import Guard, LoopConfig
from mlrsnet.meta.engine import MetaEngine
from mlrsnet.net import MLRSNet, MLRSNetConfig, compute_gamma
from mlrsnet.resume import rng_states, set_rng_states
from mlrsnet.scheduler import MLRSNetScheduler
from mlrsnet.schedules.base import LRDriver
from mlrsnet.schedules.drivers import (
    META_TRAINED,
    FrozenMLRSNetDriver,
    MLRSNetDriver,
    build_driver,
    check_schedule,
)
from mlrsnet.schedules.spec import describe_optimizer, resolve_optimizer, schedule_name, schedule_spec
from mlrsnet.tasks import Task, build_task

__all__ = [
    "Run", "Schedule", "apply_speed_options", "build_base_optimizer", "build_net", "build_run", "build_schedule",
    "initial_loss", "resolve_device", "seed_everything", "to_plain", "validate",
]


def to_plain(cfg: Any) -> dict:
    """A resolved, plain-dict copy of an OmegaConf config (or a dict)."""
    from omegaconf import DictConfig, OmegaConf

    if isinstance(cfg, DictConfig):
        return OmegaConf.to_container(cfg, resolve=True)  # type: ignore[return-value]
    return dict(cfg)


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (CPU and CUDA)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def resolve_device(name: str) -> torch.device:
    dev = torch.device(name)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device={name} requested but CUDA is not available; use device=cpu")
    return dev


def _value(cfg: dict, key: str, kind: type) -> Any:
    """``cfg[key]`` (dotted) converted to ``kind``; a wrong type is a one-line ConfigError."""
    value: Any = cfg
    for part in key.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    try:
        if kind is int and (isinstance(value, bool) or float(value) != int(float(value))):
            raise ValueError
        return kind(value)
    except (TypeError, ValueError):
        name = "an integer" if kind is int else "a number"
        raise ConfigError(f"{key} must be {name}, got {value!r}; set {key}=<{name.split()[-1]}>") from None


def validate(cfg: dict) -> None:
    """Type and range checks of a training config (conf/train.yaml), with messages that name the key and
    the fix."""
    _value(cfg, "seed", int)
    for key, low in (("epochs", 1), ("batch_size", 1), ("meta.interval", 1), ("meta.batch_size", 1),
                     ("save_every", 1), ("snapshots", 0), ("guard.max_rollbacks", 0)):
        if _value(cfg, key, int) < low:
            raise ConfigError(f"{key} must be >= {low}, got {_value(cfg, key, int)}")
    for key in ("meta.lr", "optimizer.lr"):
        if _value(cfg, key, float) <= 0:
            raise ConfigError(f"{key} must be positive, got {_value(cfg, key, float):g}")
    noise = cfg["task"].get("noise") or {}
    rate = _value({"rate": noise.get("rate", 0.0)}, "rate", float)
    if not 0.0 <= rate < 1.0:
        raise ConfigError(f"task.noise.rate must be in [0, 1), got {rate}")
    check_schedule(schedule_name(cfg))
    schedule_spec(cfg)  # the group's shape and the schedule_params alias
    if cfg["resume"] not in ("auto", True, False):
        raise ConfigError(f"resume must be auto, true or false, got {cfg['resume']!r}")
    guard = cfg["guard"]
    if guard["on_divergence"] not in ("stop", "rollback"):
        raise ConfigError(
            f"guard.on_divergence must be stop or rollback, got {guard['on_divergence']!r}"
        )
    if not 0.0 < _value(cfg, "guard.lr_factor", float) < 1.0:
        raise ConfigError(f"guard.lr_factor must be in (0, 1), got {guard['lr_factor']}")
    lr_min = _value(cfg, "guard.lr_min", float)
    if guard["lr_max"] is not None and _value(cfg, "guard.lr_max", float) <= lr_min:
        raise ConfigError(f"guard.lr_max must be above guard.lr_min ({lr_min:g}), got {guard['lr_max']}")
    if cfg["logger"]["name"] not in ("none", "wandb"):
        raise ConfigError(f"unknown logger {cfg['logger']['name']!r}; use logger=none or logger=wandb")


def build_base_optimizer(params: Iterable[torch.nn.Parameter], cfg: dict[str, Any]) -> torch.optim.Optimizer:
    """The base (inner) optimiser, SGD / Adam / AdamW, from the ``optimizer`` config section. On CUDA the
    step is ``fused``: it reads a tensor LR (MLR-SNet's output) on the device, so setting the LR needs no
    host sync. Schedules that replace the optimiser build theirs from it
    (:func:`mlrsnet.schedules.registry.build_optimizer`)."""
    params = list(params)
    cuda = bool(params) and all(isinstance(p, torch.Tensor) and p.device.type == "cuda" for p in params)
    fused = True if cuda else None
    name = str(cfg.get("name", "sgd")).lower()
    lr = float(cfg["lr"])
    if lr <= 0:
        raise ConfigError(f"optimizer.lr must be positive, got {lr}")
    wd = float(cfg.get("weight_decay", 0.0))
    if wd < 0:
        raise ConfigError(f"optimizer.weight_decay must be >= 0, got {wd}")
    if name == "sgd":
        momentum = float(cfg.get("momentum") or 0.0)
        if momentum < 0:
            raise ConfigError(f"optimizer.momentum must be >= 0, got {momentum}")
        return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=wd,
                               nesterov=bool(cfg.get("nesterov", False)) and momentum > 0, fused=fused)
    if name in ("adam", "adamw"):
        cls = torch.optim.Adam if name == "adam" else torch.optim.AdamW
        betas = tuple(cfg.get("betas", (0.9, 0.999)))
        return cls(params, lr=lr, betas=betas, eps=float(cfg.get("eps", 1e-8)), weight_decay=wd, fused=fused)
    raise ConfigError(f"unknown optimizer {name!r}; use optimizer.name=sgd, adam or adamw")


@torch.no_grad()
def initial_loss(task: Task, model: torch.nn.Module, seed: int) -> float:
    """L0: the mean training loss of the freshly initialised model over a few random training
    batches (eval mode, so BatchNorm statistics are untouched), from a dedicated generator."""
    saved = task.meta_generator.get_state()
    task.meta_generator.manual_seed(seed + 15485863)
    was_training = model.training
    model.eval()
    losses = [float(task.loss(model, task.random_train_batch())) for _ in range(4)]
    model.train(was_training)
    task.meta_generator.set_state(saved)
    return sum(losses) / len(losses)


def apply_speed_options(
    cfg: dict, task: Task, model: torch.nn.Module, device: torch.device
) -> torch.nn.Module:
    """Apply the ``amp``, ``channels_last`` and ``compile`` keys; return the module the loop calls.

    ``amp`` turns on the task's bf16 autocast (CUDA only). ``channels_last`` converts the model's 4-D
    weights in place; a convolution with NHWC weights converts its input once and emits NHWC, so batches
    need no conversion of their own. ``compile`` returns ``torch.compile(model)`` (CUDA only) for the
    loop's training and evaluation passes; the meta engine must keep the plain ``model``, whose parameters
    it substitutes through ``torch.func.functional_call`` (``exact``) or copies (``higher``).
    """
    cuda = device.type == "cuda"
    if cfg.get("amp") and cuda:
        task.autocast_dtype = torch.bfloat16
    if cfg.get("channels_last"):
        model.to(memory_format=torch.channels_last)
    return torch.compile(model) if cfg.get("compile") and cuda else model


def build_net(cfg: dict, task: Task, l0: float, device: torch.device) -> MLRSNet:
    """A fresh MLR-SNet from the ``net`` section; gamma from the formula (``net.gamma: null``) or fixed."""
    ncfg = cfg["net"]
    gamma = ncfg.get("gamma")
    if gamma is None:
        gamma = compute_gamma(l0, task.info.num_classes, float(ncfg.get("gamma_min", 1e-2)))
    elif float(gamma) <= 0:
        raise ConfigError(f"net.gamma must be positive (or null to compute it), got {gamma}")
    return MLRSNet(MLRSNetConfig(hidden_size=int(ncfg.get("hidden_size", 50))), gamma=float(gamma)).to(device)


@dataclass
class Run:
    """One seeded training run, ready for :func:`mlrsnet.loop.train_loop`: the live objects, and what
    ``run_state.pt`` captures and restores (:meth:`state_dict`).

    ``model`` is the plain module (the meta engine substitutes its parameters), ``train_model`` the one
    the loop calls (``compile`` applied). ``net`` and ``engine`` are set for ``schedule=mlrsnet`` (meta-
    trained in place); ``info`` is what a summary records about the schedule (frozen MLR-SNet: its
    checkpoints and gamma)."""

    cfg: dict
    seed: int
    schedule: str
    device: torch.device
    task: Task
    model: torch.nn.Module
    train_model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    driver: LRDriver
    l0: float
    net: MLRSNet | None = None
    engine: MetaEngine | None = None
    info: dict = field(default_factory=dict)

    @property
    def total_steps(self) -> int:
        return int(self.cfg["epochs"]) * self.task.steps_per_epoch

    def loop_config(self, desc: str, **overrides: Any) -> LoopConfig:
        """The loop settings of this run's config (``overrides`` win): epochs, meta interval, gradient
        clipping, progress and step logging, and the divergence guard where the config has one."""
        cfg = self.cfg
        guard = cfg.get("guard")
        kwargs: dict[str, Any] = {
            "epochs": int(cfg["epochs"]), "grad_clip": cfg.get("grad_clip"),
            "progress": bool(cfg.get("progress", True)), "log_steps": bool(cfg.get("log_steps", True)),
            "desc": desc,
        }
        if "interval" in (cfg.get("meta") or {}):
            kwargs["meta_interval"] = int(cfg["meta"]["interval"])
        if guard is not None:
            kwargs["guard"] = Guard(float(guard["lr_min"]),
                                    None if guard["lr_max"] is None else float(guard["lr_max"]))
        kwargs.update(overrides)
        return LoopConfig(**kwargs)

    def state_dict(self) -> dict:
        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "driver": self.driver.state_dict(),
            "net": None if self.net is None else self.net.state_dict(),
            "engine": None if self.engine is None else self.engine.state_dict(),
            "task_rng": self.task.rng_state(),
            "rng": rng_states(),
        }

    def load_state_dict(self, state: dict) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        if self.net is not None:
            self.net.load_state_dict(state["net"])
        if self.engine is not None:
            self.engine.load_state_dict(state["engine"])
        self.driver.load_state_dict(state["driver"])
        self.task.set_rng_state(state["task_rng"])
        set_rng_states(state["rng"])


def _meta_trained(cfg: dict, task: Task, model: torch.nn.Module, optimizer: torch.optim.Optimizer, l0: float,
                  device: torch.device, lr_multiplier: float) -> tuple[LRDriver, MLRSNet, MetaEngine]:
    """A fresh MLR-SNet (gamma times ``lr_multiplier``), its driver and the engine that meta-trains it."""
    torch.manual_seed(int(cfg["seed"]) + 1)
    net = build_net(cfg, task, l0, device)
    net.set_gamma(float(net.gamma) * lr_multiplier)
    meta = cfg["meta"]
    engine = MetaEngine(
        net, task, model, optimizer, backend=meta["backend"], K=int(meta["K"]), meta_lr=float(meta["lr"]),
        meta_weight_decay=float(meta["weight_decay"]), grad_clip=cfg.get("grad_clip"),
        first_order=bool(meta.get("first_order", False)),
    )
    return MLRSNetDriver(net, optimizer, task.info.loss_scale), net, engine


def _frozen(cfg: dict, task: Task, model: torch.nn.Module, optimizer: torch.optim.Optimizer, l0: float,
            nets: list[MLRSNet], total_steps: int) -> tuple[LRDriver, dict]:
    """Frozen MLR-SNet(s) on a query task, gamma per ``cfg["gamma"]``, and what the summary records.

    ``recompute`` (the reference meta-test): gamma = |sqrt(L) ln(L C) / (4 C^0.25)| at the start and at each
    swap of the bundle, with L the mean loss over the whole training split in eval mode at that moment;
    ``checkpoint``: each net's stored gamma; a number: that gamma."""
    mode = cfg["gamma"]
    scale: float | str = mode if mode in ("recompute", "checkpoint") else float(mode)
    if len(nets) > total_steps:
        raise ConfigError(f"{len(nets)} checkpoints need at least as many steps and the run has "
                          f"{total_steps}; raise epochs or pass fewer checkpoints")

    def full_train_loss() -> float:
        return float(task.evaluate(model, "train")["loss"])

    sched = MLRSNetScheduler(optimizer, nets, scale=scale, loss_scale=task.info.loss_scale, total_steps=total_steps,
                             num_classes=task.info.num_classes, train_loss=full_train_loss,
                             gamma_min=float(cfg.get("gamma_min") or 0.0))
    info = {
        "gamma_mode": mode if mode in ("recompute", "checkpoint") else "fixed",
        "checkpoint_gammas": list(sched.stored_gammas), "initial_loss": l0, "loss_scale": task.info.loss_scale,
        "num_nets": len(nets),
    }
    return FrozenMLRSNetDriver(sched), info


class Schedule(NamedTuple):
    """The optimiser a run trains with, its LR driver, for ``schedule=mlrsnet`` meta-trained in place the
    MLR-SNet and its meta engine, and what a summary records about the schedule."""

    optimizer: torch.optim.Optimizer
    driver: LRDriver
    net: MLRSNet | None = None
    engine: MetaEngine | None = None
    info: dict | None = None


def build_schedule(
    cfg: dict, task: Task, model: torch.nn.Module, optimizer: torch.optim.Optimizer, l0: float,
    device: torch.device, lr_multiplier: float = 1.0, *, name: str | None = None,
    frozen: list[MLRSNet] | None = None,
) -> Schedule:
    """Schedule ``name`` (default ``cfg["schedule"]``) over the base ``optimizer``.

    ``mlrsnet`` meta-trains a fresh MLR-SNet in place (gamma times ``lr_multiplier``) with a
    :class:`MetaEngine`, unless ``frozen`` nets are given: then they schedule the run, frozen, with
    ``cfg["gamma"]`` (transfer). Every other name goes to
    :func:`~mlrsnet.schedules.drivers.build_driver` with ``cfg["schedule_params"][name]``; it may replace
    the optimiser. ``lr_multiplier`` scales the schedule's base LR (what a benchmark tunes)."""
    name = schedule_name(cfg) if name is None else str(name)
    steps = task.steps_per_epoch
    total_steps = int(cfg["epochs"]) * steps
    if name == META_TRAINED and frozen is not None:
        driver, info = _frozen(cfg, task, model, optimizer, l0, frozen, total_steps)
        return Schedule(optimizer, driver, info=info)
    if name == META_TRAINED:
        driver, net, engine = _meta_trained(cfg, task, model, optimizer, l0, device, lr_multiplier)
        return Schedule(optimizer, driver, net, engine, {})
    params = schedule_spec(cfg, name).params
    optimizer, driver = build_driver(
        name, optimizer, model, task, total_steps=total_steps, steps_per_epoch=steps, params=params,
        lr_multiplier=lr_multiplier,
    )
    info: dict[str, Any] = {"schedule_params": params, "initial_lr": float(cfg["optimizer"]["lr"])}
    if name == "mlrsnet_frozen":
        sources = params.get("checkpoint")
        sources = sources if isinstance(sources, list) else [sources]
        info["checkpoints"] = [{"name": s, "path": str(p), "sha256": file_sha256(p)}
                               for s, p in ((s, resolve_checkpoint(s)) for s in sources)
                               if not isinstance(s, MLRSNet)]
    return Schedule(optimizer, driver, info=info)


def build_run(
    cfg: dict, *, seed: int | None = None, schedule: str | None = None, lr_multiplier: float = 1.0,
    l0: float | None = None, frozen: list[MLRSNet] | None = None,
) -> Run:
    """The seeded run of ``cfg`` (a plain dict, validated by the entry point), in a fixed order: seed,
    task, model (speed options applied), base optimiser, L0, schedule (:func:`build_schedule`).

    ``seed`` and ``schedule`` default to ``cfg["seed"]`` and the chosen schedule. The base optimiser is
    ``cfg["optimizer"]`` with its null keys filled by the schedule's ``optimizer`` overrides
    (:mod:`mlrsnet.schedules.spec`: momentum 0 under MLR-SNet, 0.9 for the SGDM baselines). ``l0`` is the
    initial loss to use (a resumed run's), else it is measured (:func:`initial_loss`)."""
    seed = int(cfg["seed"] if seed is None else seed)
    schedule = schedule_name(cfg) if schedule is None else str(schedule)
    spec = schedule_spec(cfg, schedule)
    device = resolve_device(str(cfg["device"]))
    seed_everything(seed)
    task = build_task(cfg["task"], seed, device)
    torch.manual_seed(seed)
    model = task.build_model()
    train_model = apply_speed_options(cfg, task, model, device)
    optimizer = build_base_optimizer(model.parameters(), resolve_optimizer(cfg["optimizer"], spec.optimizer))
    if l0 is None:
        l0 = initial_loss(task, model, seed)
    built = build_schedule(cfg, task, model, optimizer, l0, device, lr_multiplier, name=schedule, frozen=frozen)
    info = {**(built.info or {}), "optimizer": describe_optimizer(built.optimizer)}
    return Run(cfg, seed, schedule, device, task, model, train_model, built.optimizer, built.driver, l0,
               built.net, built.engine, info)
