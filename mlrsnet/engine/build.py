"""The run builder: a typed config -> a seeded run (task, model, optimiser, LR driver, meta engine).

Every command builds its runs here and trains them through :mod:`mlrsnet.engine.runner`. The order of
construction is fixed, so one seed means one split, label noise, data order and initialisation whatever the
schedule::

    config (typed, mlrsnet.engine.config) -> threads -> seed -> task -> model (+ speed options)
        -> base optimiser (the optimizer section, the schedule's overrides) -> L0
        -> schedule (mlrsnet.schedules.registry.build: the schedule's own declaration)
        -> Run  ->  Run.loop_config()  ->  the loop
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import torch

from mlrsnet.engine.config import RunConfig, ScheduleChoice, TrainConfig, schedule_choice
from mlrsnet.engine.loop import Guard, LoopConfig
from mlrsnet.errors import ConfigError
from mlrsnet.meta.engine import MetaEngine
from mlrsnet.net import MLRSNet, NetConfig
from mlrsnet.rng import rng_states, seed_everything, set_rng_states
from mlrsnet.schedules import registry
from mlrsnet.schedules.base import LRDriver
from mlrsnet.schedules.optim import build_base_optimizer, describe_optimizer, resolve_optimizer
from mlrsnet.schedules.spec import BuildContext
from mlrsnet.tasks import Task, build_task
from mlrsnet.tasks.base import ClassificationTask

__all__ = ["Run", "apply_speed_options", "build_run", "check_optimizer", "initial_loss", "resolve_device",
           "set_threads", "usable_cpus"]


def check_optimizer(cfg: RunConfig, schedule: str | ScheduleChoice | None = None) -> None:
    """Build schedule ``schedule``'s optimiser as run config ``cfg`` sets it, over one dummy parameter, without a
    task or a model: an optimiser that rejects its settings (schedule-free SGD with momentum 0, a missing optional
    package) is a one-line ConfigError before any run starts, not an error in the middle of a sweep."""
    from mlrsnet.schedules.drivers import REPLACING, replacement_optimizer
    from mlrsnet.schedules.spec import given_params

    choice = schedule if isinstance(schedule, ScheduleChoice) else schedule_choice(cfg, schedule)
    decl = registry.get_schedule(choice.name)
    param = torch.nn.Parameter(torch.zeros(1))
    base = build_base_optimizer([param], resolve_optimizer(cfg.optimizer, choice.optimizer))
    if decl.kind in REPLACING and decl.make is not None:
        try:
            replacement_optimizer(decl, base.param_groups[0], [param], 1.0, given_params(choice.params))
        except ConfigError as e:
            raise ConfigError(f"schedule {choice.name} on task {cfg.task.name}: {str(e).removesuffix('; fix them')}; "
                              "leave the schedule out of this task's runs, or change the task's optimiser "
                              "(optimizer.KEY=VALUE)") from None


def usable_cpus() -> int:
    """The CPUs this process may run on: its affinity mask (under SLURM with task binding, the job's
    cpus_per_task), no more than ``SLURM_CPUS_PER_TASK`` where SLURM sets it (clusters that do not bind)."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    slurm = os.environ.get("SLURM_CPUS_PER_TASK", "")
    return min(cpus, int(slurm)) if slurm.isdigit() and int(slurm) > 0 else cpus


def set_threads(threads: int | None) -> int:
    """Set torch's intra-op thread count from the ``threads`` key (null: :func:`usable_cpus`) and return it.

    CPU kernels split their reductions by thread, so the thread count changes a run's last digits: the same
    config with the same ``threads`` gives the same numbers on any machine (environment.json records it)."""
    n = usable_cpus() if threads is None else int(threads)
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


@torch.no_grad()
def initial_loss(task: Task, model: torch.nn.Module, seed: int, over: str = "train") -> float:
    """L0: the mean training loss of the freshly initialised model in eval mode (BatchNorm statistics
    untouched): over the whole training split (``over="train"``, as the reference's ``meta_train.py``), the same
    with the training augmentation drawn from a dedicated generator (``"train_augmented"``, as the reference
    measures it on its augmented training loader; tasks with an augmentation only), or over 4 random training
    batches from a dedicated generator (``"batches"``)."""
    if over == "train":
        return float(task.evaluate(model, "train")["loss"])
    if over == "train_augmented":
        if not (isinstance(task, ClassificationTask) and task.transform_train is not None):
            raise ConfigError(f"net.l0_over=train_augmented: task {task.info.name} has no training augmentation; "
                              "set net.l0_over=train")
        return float(task.evaluate(model, "train", augment=torch.Generator().manual_seed(seed + 15485863))["loss"])
    saved = task.meta_generator.get_state()
    task.meta_generator.manual_seed(seed + 15485863)
    was_training = model.training
    model.eval()
    losses = [float(task.loss(model, task.random_train_batch())) for _ in range(4)]
    model.train(was_training)
    task.meta_generator.set_state(saved)
    return sum(losses) / len(losses)


def apply_speed_options(cfg: RunConfig, task: Task, model: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """Apply the ``amp``, ``channels_last`` and ``compile`` keys; return the module the loop calls.

    ``amp`` turns on the task's bf16 autocast (CUDA only). ``channels_last`` converts the model's 4-D
    weights in place; a convolution with NHWC weights converts its input once and emits NHWC, so batches
    need no conversion of their own. ``compile`` returns ``torch.compile(model)`` (CUDA only) for the
    loop's training and evaluation passes; the meta engine must keep the plain ``model``, whose parameters
    it substitutes through ``torch.func.functional_call`` (``exact``) or copies (``higher``).
    """
    cuda = device.type == "cuda"
    if cfg.amp and cuda:
        task.autocast_dtype = torch.bfloat16
    if cfg.channels_last:
        model.to(memory_format=torch.channels_last)
    return torch.compile(model) if cfg.compile and cuda else model


@dataclass
class Run:
    """One seeded training run, ready for the loop: the live objects, and what ``run_state.pt`` captures and
    restores (:meth:`state_dict`).

    ``model`` is the plain module (the meta engine substitutes its parameters), ``train_model`` the one
    the loop calls (``compile`` applied). ``net`` and ``engine`` are set for ``schedule=mlrsnet`` (meta-
    trained in place); ``info`` is what a record keeps about the schedule (frozen MLR-SNet: its
    checkpoints and gamma)."""

    cfg: RunConfig
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
        return self.cfg.epochs * self.task.steps_per_epoch

    def loop_config(self, desc: str, **overrides: Any) -> LoopConfig:
        """The loop settings of this run's config (``overrides`` win): epochs, meta interval, gradient
        clipping, progress and step logging, and the divergence guard where the config has one."""
        cfg = self.cfg
        bar = cfg.progress_bar
        kwargs: dict[str, Any] = {"epochs": cfg.epochs, "grad_clip": cfg.grad_clip, "progress": bar,
                                  "epoch_lines": cfg.progress == "auto" and not bar, "log_steps": cfg.log_steps,
                                  "desc": desc}
        if isinstance(cfg, TrainConfig):
            kwargs["meta_interval"] = cfg.meta.interval
            kwargs["meta_counter"] = cfg.meta.counter
            factor = cfg.guard.max_loss_factor
            kwargs["guard"] = Guard(cfg.guard.lr_min, cfg.guard.lr_max,
                                    None if factor is None or not self.l0 > 0 else factor * self.l0)
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


def build_run(
    cfg: RunConfig, *, seed: int | None = None, schedule: str | ScheduleChoice | None = None,
    lr_multiplier: float = 1.0, l0: float | None = None, gamma_key: str = "schedule.gamma",
) -> Run:
    """The seeded run of the typed config ``cfg``, in a fixed order: torch's thread count (``threads``,
    :func:`set_threads`), seed, task, model (speed options applied), base optimiser, L0, schedule.

    ``seed`` defaults to ``cfg.seed``; ``schedule`` to the chosen one (a name: as ``cfg`` sets it,
    :func:`~mlrsnet.engine.config.schedule_choice`; or a :class:`ScheduleChoice`). The base optimiser is
    ``cfg.optimizer`` with its null keys filled by the schedule's optimiser overrides (momentum 0 under
    MLR-SNet, 0.9 for the SGDM baselines). ``l0`` is the initial loss to use (a resumed run's), else it is
    measured (:func:`initial_loss`): over ``net.l0_over`` for a schedule that reads it (``needs_l0``), over 4
    training batches (the divergence guard's reference) for the others. ``lr_multiplier`` scales the schedule's
    base LR (what a benchmark tunes); ``gamma_key`` is the key a warning about a frozen MLR-SNet's gamma names."""
    seed = cfg.seed if seed is None else int(seed)
    choice = schedule if isinstance(schedule, ScheduleChoice) else schedule_choice(cfg, schedule)
    device = resolve_device(cfg.device)
    set_threads(cfg.threads)
    seed_everything(seed)
    task = build_task(cfg.task, seed, device)
    torch.manual_seed(seed)
    model = task.build_model()
    train_model = apply_speed_options(cfg, task, model, device)
    optimizer = build_base_optimizer(model.parameters(), resolve_optimizer(cfg.optimizer, choice.optimizer))
    net_cfg = getattr(cfg, "net", None) or NetConfig()
    if l0 is None:  # the whole training split only for a schedule that reads L0; 4 batches for the guard else
        l0 = initial_loss(task, model, seed, net_cfg.l0_over if registry.get_schedule(choice.name).needs_l0
                          else "batches")
    ctx = BuildContext(optimizer, model, task, cfg.epochs * task.steps_per_epoch, task.steps_per_epoch,
                       lr_multiplier, l0=l0, seed=seed, device=device, net=net_cfg, meta=getattr(cfg, "meta", None),
                       grad_clip=cfg.grad_clip, gamma_key=gamma_key)
    built = registry.build(choice.name, ctx, choice.params)
    info = {"schedule_params": registry.params_as_dict(choice.params), "initial_lr": cfg.optimizer.lr,
            **built.info, "optimizer": describe_optimizer(built.optimizer)}
    return Run(cfg, seed, choice.name, device, task, model, train_model, built.optimizer, built.driver, l0,
               built.net, built.engine, info)
