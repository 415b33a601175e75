"""The run builder: a composed config -> a seeded run (task, model, optimiser, LR driver, meta engine).

Every entry point (:mod:`mlrsnet.train`, :mod:`mlrsnet.transfer`, :mod:`mlrsnet.bench`) builds its runs
here and hands them to :func:`mlrsnet.engine.loop.train_loop`; none of them imports another. The order of
construction is fixed, so one seed means one split, label noise, data order and initialisation whatever
the schedule::

    cfg -> validate -> seed -> task -> model (+ speed options) -> base optimiser -> L0
        -> schedule: the meta-trained MLR-SNet and its MetaEngine (schedule=mlrsnet),
                     a frozen MLR-SNet (transfer), or any baseline (mlrsnet.schedules.drivers)
        -> Run  ->  Run.loop_config()  ->  train_loop
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import torch

from mlrsnet.checkpoint import resolve_checkpoint
from mlrsnet.engine.config import check_types
from mlrsnet.engine.loop import Guard, LoopConfig
from mlrsnet.errors import ConfigError
from mlrsnet.io import file_sha256
from mlrsnet.meta.engine import MetaEngine
from mlrsnet.net import GAMMA_FROM, MLRSNet, MLRSNetConfig, compute_gamma, gamma_statistic, resolve_gamma_from
from mlrsnet.rng import rng_states, seed_everything, set_rng_states
from mlrsnet.schedules.base import LRDriver
from mlrsnet.schedules.drivers import (
    META_TRAINED,
    FrozenMLRSNetDriver,
    MLRSNetDriver,
    build_driver,
    check_schedule,
    with_safety,
)
from mlrsnet.schedules.scheduler import MLRSNetScheduler, without_scale_warning
from mlrsnet.schedules.spec import describe_optimizer, resolve_optimizer, schedule_name, schedule_spec
from mlrsnet.tasks import Task, build_task

__all__ = [
    "ADAPTIVE", "Run", "Schedule", "apply_speed_options", "build_base_optimizer", "build_net", "build_run",
    "build_schedule", "initial_loss", "resolve_device", "set_threads", "to_plain", "usable_cpus",
    "validate", "warn_adaptive_gamma",
]


def to_plain(cfg: Any) -> dict:
    """A resolved, plain-dict copy of an OmegaConf config (or a dict)."""
    from omegaconf import DictConfig, OmegaConf

    if isinstance(cfg, DictConfig):
        return OmegaConf.to_container(cfg, resolve=True)  # type: ignore[return-value]
    return dict(cfg)


def usable_cpus() -> int:
    """The CPUs this process may run on: its affinity mask (under SLURM with task binding, the job's
    cpus_per_task), no more than ``SLURM_CPUS_PER_TASK`` where SLURM sets it (clusters that do not bind)."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    slurm = os.environ.get("SLURM_CPUS_PER_TASK", "")
    return min(cpus, int(slurm)) if slurm.isdigit() and int(slurm) > 0 else cpus


def set_threads(threads: Any) -> int:
    """Set torch's intra-op thread count from the ``threads`` key (null: :func:`usable_cpus`) and return it.

    CPU kernels split their reductions by thread, so the thread count changes a run's last digits: the same
    config with the same ``threads`` gives the same numbers on any machine (environment.json records it)."""
    if threads is None:
        n = usable_cpus()
    else:
        if isinstance(threads, bool) or not isinstance(threads, int):
            raise ConfigError(f"threads must be an integer (or null: the CPUs this process may use), got {threads!r}; "
                              "set threads=<integer>")
        n = threads
        if n < 1:
            raise ConfigError(f"threads must be >= 1 (or null: the CPUs this process may use), got {n}")
    if torch.get_num_threads() != n:
        torch.set_num_threads(n)
    return n


def resolve_device(name: str) -> torch.device:
    dev = torch.device(name)
    if dev.type == "cuda" and not torch.cuda.is_available():
        fix = "use device=cpu"
        if os.environ.get("SLURM_JOB_ID"):
            fix += ", or ask SLURM for a GPU with hydra.launcher.gpus_per_node=1"
        raise ConfigError(f"device={name} requested but CUDA is not available; {fix}")
    return dev


def _get(cfg: dict, key: str) -> Any:
    """``cfg[key]`` for a dotted key (None where a section or the key is absent)."""
    value: Any = cfg
    for part in key.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


def _at_least(cfg: dict, low: int | float, *keys: str) -> None:
    for key in keys:
        value = _get(cfg, key)
        if value is not None and value < low:
            raise ConfigError(f"{key} must be >= {low}, got {value}; set {key}={max(low, 1)} or more")


def _positive(cfg: dict, *keys: str) -> None:
    for key in keys:
        value = _get(cfg, key)
        if value is not None and not value > 0:
            raise ConfigError(f"{key} must be positive, got {value:g}; set {key}=<a positive number>")


def _choice(cfg: dict, key: str, choices: tuple) -> None:
    value = _get(cfg, key)
    if value not in choices:
        shown = ", ".join(str(c).lower() for c in choices)
        raise ConfigError(f"{key}={value!r} is not one of {shown}; set {key}={str(choices[0]).lower()}")


def _check_common(cfg: dict) -> None:
    """Ranges and choices of the keys every entry point has (their types are checked already)."""
    _at_least(cfg, 1, "epochs", "batch_size", "task.batch_size", "task.meta_batch_size", "task.eval_batch_size",
              "task.bptt")
    _at_least(cfg, 0, "task.meta_size", "task.crop_pad", "task.meta_tokens")
    _positive(cfg, "optimizer.lr", "optimizer.eps")
    _at_least(cfg, 0, "optimizer.weight_decay")
    momentum = _get(cfg, "optimizer.momentum")
    if momentum is not None and not 0.0 <= momentum < 1.0:
        raise ConfigError(f"optimizer.momentum must be in [0, 1), got {momentum:g}; set optimizer.momentum=0.9 "
                          "(or 0 for none)")
    betas = _get(cfg, "optimizer.betas")
    if betas is not None and (len(betas) != 2 or not all(0.0 <= b < 1.0 for b in betas)):
        raise ConfigError(f"optimizer.betas must be two numbers in [0, 1), got {list(betas)}; set "
                          "optimizer.betas=[0.9,0.999]")
    _choice(cfg, "optimizer.name", ("sgd", "adam", "adamw"))
    clip = cfg.get("grad_clip")
    if clip is not None and not clip > 0:
        raise ConfigError(f"grad_clip must be a positive gradient norm or null (no clipping), got {clip:g}; "
                          "set grad_clip=null or grad_clip=1.0")
    fraction = _get(cfg, "task.train_fraction")
    if fraction is not None and not 0.0 < fraction <= 1.0:
        raise ConfigError(f"task.train_fraction must be in (0, 1], got {fraction:g}; set task.train_fraction=1.0")
    _choice(cfg, "task.noise.kind", ("none", "sym", "pair", "unif", "flip"))
    kind, rate = cfg["task"]["noise"]["kind"], cfg["task"]["noise"]["rate"]
    if not 0.0 <= rate < 1.0:
        raise ConfigError(f"task.noise.rate must be in [0, 1), got {rate}; set task.noise.rate=0.4 (for example)")
    if rate > 0 and kind == "none":
        raise ConfigError(f"task.noise.rate={rate} has no effect with task.noise.kind=none; add "
                          "task.noise.kind=sym (or pair) to corrupt the labels, or drop task.noise.rate")
    device = str(cfg.get("device", "cpu"))
    try:
        torch.device(device)
    except (RuntimeError, ValueError):
        raise ConfigError(f"device={device!r} is not a device; set device=cpu, device=cuda or device=cuda:N") from None


def validate(cfg: dict, entry: str = "train") -> None:
    """Validate a composed config of entry point ``entry`` (``train``, ``bench``, ``transfer``, ``ensemble`` or
    ``rl``) once,
    before anything is built or written: types and unknown keys against the schema
    (:func:`mlrsnet.engine.config.check_types`), then ranges and choices. Every error is one line naming the
    full key, the value and the fix. ``transfer`` has further checks of its own
    (:func:`mlrsnet.transfer.validate_transfer`); ``bench`` too (:func:`mlrsnet.bench.validate_bench`)."""
    cfg = check_types(cfg, entry)
    _check_common(cfg)
    if entry == "transfer":
        return
    _at_least(cfg, 1, "meta.interval", "meta.batch_size", "meta.K", "save_every", "net.hidden_size")
    _at_least(cfg, 0, "snapshots", "guard.max_rollbacks", "meta.weight_decay", "guard.lr_min")
    _positive(cfg, "meta.lr", "net.gamma", "net.gamma_min")
    _choice(cfg, "meta.backend", ("exact", "higher", "unroll"))
    _choice(cfg, "net.gamma_from", GAMMA_FROM)
    _choice(cfg, "net.l0_over", L0_OVER)
    check_schedule(schedule_name(cfg))
    schedule_spec(cfg)  # the group's shape and the schedule_params alias
    if cfg["resume"] not in ("auto", True, False):
        raise ConfigError(f"resume must be auto, true or false, got {cfg['resume']!r}; set resume=auto")
    _choice(cfg, "guard.on_divergence", ("stop", "rollback"))
    guard = cfg["guard"]
    if not 0.0 < guard["lr_factor"] < 1.0:
        raise ConfigError(f"guard.lr_factor must be in (0, 1), got {guard['lr_factor']}; set guard.lr_factor=0.5")
    if guard["lr_max"] is not None and guard["lr_max"] <= guard["lr_min"]:
        raise ConfigError(f"guard.lr_max must be above guard.lr_min ({guard['lr_min']:g}), got {guard['lr_max']}; "
                          "raise guard.lr_max or set it to null")
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


L0_OVER = ("train", "batches")


@torch.no_grad()
def initial_loss(task: Task, model: torch.nn.Module, seed: int, over: str = "train") -> float:
    """L0: the mean training loss of the freshly initialised model in eval mode (BatchNorm statistics
    untouched): over the whole training split (``over="train"``, as the reference's ``meta_train.py``), or
    over 4 random training batches from a dedicated generator (``"batches"``)."""
    if over == "train":
        return float(task.evaluate(model, "train")["loss"])
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
    """A fresh MLR-SNet from the ``net`` section; gamma from the formula (``net.gamma: null``; its L is the
    initial loss, or for a language model the initial perplexity, per ``net.gamma_from``) or fixed."""
    ncfg = cfg["net"]
    gamma = ncfg.get("gamma")
    if gamma is None:
        stat = gamma_statistic(l0, str(ncfg.get("gamma_from", "auto")), task.info.metric)
        gamma = compute_gamma(stat, task.info.num_classes, float(ncfg.get("gamma_min", 1e-2)))
    elif float(gamma) <= 0:
        raise ConfigError(f"net.gamma must be positive (or null to compute it), got {gamma}")
    return MLRSNet(MLRSNetConfig(hidden_size=int(ncfg.get("hidden_size", 50))), gamma=float(gamma)).to(device)


ADAPTIVE = ("adam", "adamw")


def warn_adaptive_gamma(cfg: dict, gamma: float, key: str) -> None:
    """Warn (one line on stderr) when the paper's gamma, an SGD-scale LR ceiling, drives Adam or AdamW.

    gamma = sqrt(L0) ln(L0 C) / (4 C^0.25) was derived for SGD: about 0.67 on digits, so MLR-SNet's first
    LR (about gamma / 2) is two orders of magnitude above Adam's usual 1e-3, and Adam does not learn. The
    gamma is left as the formula gives it (a silent rescale would change what the formula means); the
    warning names the key that fixes it."""
    name = str(cfg["optimizer"].get("name", "sgd")).lower()
    if name in ADAPTIVE:
        print(f"warning: optimizer.name={name} with the SGD-scale gamma {gamma:.3g} of the paper's formula: "
              f"the first LR is about {gamma / 2:.2g}, far above the ~1e-3 {name} trains with; set {key} to "
              f"about twice the LR you want (e.g. {key}=0.002)", file=sys.stderr, flush=True)


def warn_recomputed_gamma(cfg: dict, task: Task, l0: float, gamma_from: str, key: str, *,
                          factor: float = 1.0, gamma_min: float = 0.0) -> None:
    """:func:`warn_adaptive_gamma` for a frozen MLR-SNet whose gamma is recomputed (the reference meta-test's):
    its first gamma, from the initial loss ``l0`` (or perplexity, per the resolved ``gamma_from``), times
    ``factor`` (a bench's LR multiplier)."""
    gamma = compute_gamma(gamma_statistic(l0, gamma_from), task.info.num_classes, gamma_min)
    warn_adaptive_gamma(cfg, factor * gamma, key)


@dataclass
class Run:
    """One seeded training run, ready for :func:`mlrsnet.engine.loop.train_loop`: the live objects, and what
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
    if cfg["net"].get("gamma") is None:
        warn_adaptive_gamma(cfg, float(net.gamma), "net.gamma")
    meta = cfg["meta"]
    engine = MetaEngine(
        net, task, model, optimizer, backend=meta["backend"], K=int(meta["K"]), meta_lr=float(meta["lr"]),
        meta_weight_decay=float(meta["weight_decay"]), grad_clip=cfg.get("grad_clip"),
        first_order=bool(meta.get("first_order", False)),
        lookahead_advances_state=bool(meta.get("lookahead_advances_state", False)),
    )
    return MLRSNetDriver(net, optimizer, task.info.loss_scale), net, engine


def _frozen(cfg: dict, task: Task, model: torch.nn.Module, optimizer: torch.optim.Optimizer, l0: float,
            nets: list[MLRSNet], total_steps: int) -> tuple[LRDriver, dict]:
    """Frozen MLR-SNet(s) on a query task, gamma per ``cfg["gamma"]``, and what the summary records.

    ``recompute`` (the reference meta-test): gamma = |sqrt(L) ln(L C) / (4 C^0.25)| at the start and at each
    swap of the bundle, with L the mean loss over the whole training split in eval mode at that moment (its
    perplexity for a language model, per ``cfg["gamma_from"]``);
    ``checkpoint``: each net's stored gamma; a number: that gamma."""
    mode = cfg["gamma"]
    scale: float | str = mode if mode in ("recompute", "checkpoint") else float(mode)
    gamma_from = resolve_gamma_from(str(cfg.get("gamma_from", "auto")), task.info.metric)
    if mode == "recompute":
        warn_recomputed_gamma(cfg, task, l0, gamma_from, "gamma", gamma_min=float(cfg.get("gamma_min", 1e-2)))
    if len(nets) > total_steps:
        raise ConfigError(f"{len(nets)} checkpoints need at least as many steps and the run has "
                          f"{total_steps}; raise epochs or pass fewer checkpoints")

    def full_train_loss() -> float:
        return float(task.evaluate(model, "train")["loss"])

    with without_scale_warning():  # warn_recomputed_gamma above has said it, naming the config key
        sched = MLRSNetScheduler(optimizer, nets, scale=scale, loss_scale=task.info.loss_scale,
                                 total_steps=total_steps, num_classes=task.info.num_classes,
                                 train_loss=full_train_loss, gamma_min=float(cfg.get("gamma_min") or 0.0),
                                 gamma_from=gamma_from)
    info = {
        "gamma_mode": mode if mode in ("recompute", "checkpoint") else "fixed", "gamma_from": gamma_from,
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
    if name == META_TRAINED:
        safe = bool(schedule_spec(cfg, name).params.get("safe", False)) if frozen is None else False
        if frozen is not None:
            driver, info = _frozen(cfg, task, model, optimizer, l0, frozen, total_steps)
            return Schedule(optimizer, driver, info=info)
        driver, net, engine = _meta_trained(cfg, task, model, optimizer, l0, device, lr_multiplier)
        return Schedule(optimizer, with_safety(driver, safe, optimizer, task, model, name), net, engine, {})
    params = schedule_spec(cfg, name).params
    optimizer, driver = build_driver(
        name, optimizer, model, task, total_steps=total_steps, steps_per_epoch=steps, params=params,
        lr_multiplier=lr_multiplier,
    )
    if name == "mlrsnet_frozen" and params.get("scale", "recompute") == "recompute":  # params validated above
        key = "schedule_params.mlrsnet_frozen.scale" if "schedules" in cfg else "schedule.scale"  # bench / train
        warn_recomputed_gamma(cfg, task, l0, resolve_gamma_from(str(params.get("gamma_from") or "auto"),
                                                                task.info.metric), key, factor=lr_multiplier)
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
    """The seeded run of ``cfg`` (a plain dict, validated by the entry point), in a fixed order: torch's
    thread count (``threads``, :func:`set_threads`), seed, task, model (speed options applied), base
    optimiser, L0, schedule (:func:`build_schedule`).

    ``seed`` and ``schedule`` default to ``cfg["seed"]`` and the chosen schedule. The base optimiser is
    ``cfg["optimizer"]`` with its null keys filled by the schedule's ``optimizer`` overrides
    (:mod:`mlrsnet.schedules.spec`: momentum 0 under MLR-SNet, 0.9 for the SGDM baselines). ``l0`` is the
    initial loss to use (a resumed run's), else it is measured (:func:`initial_loss`)."""
    seed = int(cfg["seed"] if seed is None else seed)
    schedule = schedule_name(cfg) if schedule is None else str(schedule)
    spec = schedule_spec(cfg, schedule)
    device = resolve_device(str(cfg["device"]))
    set_threads(cfg.get("threads"))
    seed_everything(seed)
    task = build_task(cfg["task"], seed, device)
    torch.manual_seed(seed)
    model = task.build_model()
    train_model = apply_speed_options(cfg, task, model, device)
    optimizer = build_base_optimizer(model.parameters(), resolve_optimizer(cfg["optimizer"], spec.optimizer))
    if l0 is None:
        l0 = initial_loss(task, model, seed, str((cfg.get("net") or {}).get("l0_over", "train")))
    built = build_schedule(cfg, task, model, optimizer, l0, device, lr_multiplier, name=schedule, frozen=frozen)
    info = {**(built.info or {}), "optimizer": describe_optimizer(built.optimizer)}
    return Run(cfg, seed, schedule, device, task, model, train_model, built.optimizer, built.driver, l0,
               built.net, built.engine, info)
