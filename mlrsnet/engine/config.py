"""The typed config of every command: one dataclass per concept, each field declared once with its default,
its range and its help (:func:`mlrsnet.typed.setting`); :func:`parse_config` turns a composed config into
these objects once, and every builder takes them.

The sections owned by the domain are declared there: :class:`~mlrsnet.schedules.optim.OptimizerConfig`
(``optimizer``), :class:`~mlrsnet.net.NetConfig` (``net``), :class:`~mlrsnet.meta.engine.MetaConfig`
(``meta``), each task family's :class:`~mlrsnet.tasks.base.TaskConfig` (``task``, chosen by its ``dataset``)
and each schedule's parameter class (``schedule``, chosen by its ``name``; :class:`ScheduleChoice`).

Hydra composes a command's config from these defaults: :func:`register_command_configs` stores them in the
ConfigStore (``base/<command>``), and ``conf/<command>.yaml`` lists that node first in its defaults, then the
config groups (``logger``, ``schedule``) and its own Hydra settings. A task file (``+task=NAME``) fills the
``task`` section on top of its dataset's defaults (``task_schema/<dataset>``) and may set any other key.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, fields
from typing import Any

import torch

from mlrsnet.errors import ConfigError
from mlrsnet.meta.engine import MetaConfig
from mlrsnet.net import NetConfig
from mlrsnet.schedules.catalog.mlrsnet_frozen import FrozenParams
from mlrsnet.schedules.optim import OptimizerConfig
from mlrsnet.schedules.registry import get_schedule, parse_params
from mlrsnet.schedules.rl_policy import DEFAULT_ACTIONS, AgentSpec
from mlrsnet.schedules.spec import ScheduleParams
from mlrsnet.tasks import parse_task
from mlrsnet.typed import defaults, help_of, parse, setting

__all__ = ["CONFIGS", "BenchConfig", "DataConfig", "EnsembleConfig", "GuardConfig", "LoggerConfig", "QueryConfig",
           "RLConfig", "RunConfig", "ScheduleChoice", "TrainConfig", "TransferConfig", "parse_config",
           "register_command_configs", "schedule_choice"]


@dataclass
class DataConfig:
    root: str = setting("${oc.env:MLRSNET_DATA,./data}", "datasets are read from (and downloaded into) this "
                        "directory (default: $MLRSNET_DATA, else ./data)")
    download: bool = setting(True, "false (or env MLRSNET_OFFLINE=1): never touch the network; missing data is an "
                             "error")


@dataclass
class LoggerConfig:
    name: str = setting("none", "none | wandb (mirror to Weights & Biases) | tensorboard (event files in "
                        "<run dir>/tensorboard); the local files are always written", choices=("none", "wandb",
                                                                                             "tensorboard"))
    project: str | None = setting(None, "wandb project")
    entity: str | None = setting(None, "your wandb user or team; null: the account's default")
    group: str | None = setting(None, "e.g. the sweep's name, to group its runs")
    tags: list[str] = setting([], "wandb tags")
    run_name: str | None = setting(None, "null: wandb picks one")
    mode: str | None = setting(None, "online | offline | disabled; null: the WANDB_MODE environment variable, else "
                               "online")
    dir: str | None = setting(None, "where wandb (null: WANDB_DIR, else the run directory) or TensorBoard (null: "
                              "<run dir>/tensorboard) keeps its files")
    log_checkpoint: bool = setting(True, "upload mlrsnet.pt as a `model` artifact at the end of the run")


@dataclass
class GuardConfig:
    """Divergence: a non-finite loss or meta loss, or a learning rate outside [lr_min, lr_max]."""

    on_divergence: str = setting("stop", "stop: exit (code 3) naming the step, loss and LR; run_state.pt keeps the "
                                 "last good state | rollback: restore it and multiply the LR by lr_factor",
                                 choices=("stop", "rollback"))
    lr_min: float = setting(0.0, "lowest allowed LR", ge=0)
    lr_max: float | None = setting(None, "highest allowed LR; null: no upper bound")
    lr_factor: float = setting(0.5, "rollback scales MLR-SNet's gamma (schedule=mlrsnet) or optimizer.lr", gt=0,
                               lt=1, example="0.5")
    max_rollbacks: int = setting(3, "then stop as with on_divergence=stop", ge=0)
    max_loss_factor: float | None = setting(1000.0, "a finite training loss above max_loss_factor x L0 (the initial "
                                            "loss) is a divergence too (an explosion); null: only non-finite ones",
                                            gt=1)

    def check(self, prefix: str) -> None:
        if self.lr_max is not None and self.lr_max <= self.lr_min:
            raise ConfigError(f"{prefix}lr_max must be above {prefix}lr_min ({self.lr_min:g}), got {self.lr_max}; "
                              f"raise {prefix}lr_max or set it to null")


@dataclass
class ScheduleChoice:
    """A schedule as a run uses it: its name, the overrides of the base optimiser it runs with, and its typed
    parameters."""

    name: str
    optimizer: dict[str, Any]
    params: ScheduleParams


@dataclass
class RunConfig:
    """The keys every command shares."""

    seed: int = setting(0, "seeds the split, label noise, data order and initialisation")
    device: str = setting("cpu", "cpu | cuda | cuda:N")
    threads: int | None = setting(None, "torch's CPU threads; null: the CPUs this process may use (under SLURM, "
                                  "cpus_per_task). The thread count changes a run's last digits", ge=1)
    epochs: int = setting(10, "training epochs", ge=1)
    batch_size: int = setting(64, "training batch size", ge=1)
    grad_clip: float | None = setting(None, "max global grad norm (language models); null: no clipping")
    amp: bool = setting(False, "bf16 autocast of forward passes (training, meta and evaluation) on CUDA")
    channels_last: bool = setting(False, "NHWC memory format for convolutional models")
    compile: bool = setting(False, "torch.compile the training forward on CUDA (the meta step uses the plain model)")
    data: DataConfig = setting(DataConfig(), "where datasets live")
    optimizer: OptimizerConfig = setting(OptimizerConfig(), "the base (inner) optimiser")
    task: Any = setting(None, "the task: +task=NAME (conf/task/NAME.yaml); a TaskConfig of its dataset once parsed")
    schedule_params: dict[str, Any] = setting({}, "per-schedule parameters of the schedules a command compares: "
                                              "+schedule_params.<name>.<key>=value")
    progress: Any = setting("auto", "auto: a progress bar where stderr is a terminal, else one line per epoch (SLURM "
                            "and other logs) | true: a bar | false: neither")
    log_steps: bool = setting(True, "per-step LR and loss lines in metrics.jsonl")

    def check(self, prefix: str) -> None:
        if self.grad_clip is not None and not self.grad_clip > 0:
            raise ConfigError(f"grad_clip must be a positive gradient norm or null (no clipping), got "
                              f"{self.grad_clip:g}; set grad_clip=null or grad_clip=1.0")
        if self.progress not in ("auto", True, False):
            raise ConfigError(f"progress must be auto, true or false, got {self.progress!r}; set progress=auto")
        try:
            torch.device(self.device)
        except (RuntimeError, ValueError):
            raise ConfigError(f"device={self.device!r} is not a device; set device=cpu, device=cuda or "
                              "device=cuda:N") from None
        if not isinstance(self.schedule_params, dict) or not all(isinstance(v, dict | None)
                                                                 for v in self.schedule_params.values()):
            raise ConfigError("schedule_params must map schedule names to their parameters, e.g. "
                              "+schedule_params.step.gamma=0.5")

    @property
    def progress_bar(self) -> bool:
        """Whether to draw a progress bar (``progress=auto``: where stderr is a terminal)."""
        return sys.stderr.isatty() if self.progress == "auto" else bool(self.progress)


@dataclass
class TrainConfig(RunConfig):
    """``python -m mlrsnet.train``: conf/train.yaml + a task."""

    logger: LoggerConfig = setting(LoggerConfig(), "experiment tracker")
    schedule: Any = setting("mlrsnet", "the LR schedule (schedule=NAME); a ScheduleChoice once parsed")
    meta: MetaConfig = setting(MetaConfig(), "meta-training of MLR-SNet in place")
    net: NetConfig = setting(NetConfig(), "the meta-trained MLR-SNet")
    copy_to_checkpoints: bool = setting(False, "also copy the run's bundle to <checkpoints_dir>/<task>_seed<seed>.pt "
                                        "(never into the shipped ones)")
    checkpoints_dir: str = setting("checkpoints", "where copy_to_checkpoints writes")
    snapshots: int = setting(5, "MLR-SNet weights kept at this many evenly spaced epochs (plots); 0: none", ge=0)
    resume: Any = setting("auto", "auto: continue from the run directory's run_state.pt if it has one | true: "
                          "require one | false: start over")
    save_every: int = setting(1, "epochs between run-state saves", ge=1)
    guard: GuardConfig = setting(GuardConfig(), "divergence guard")

    def check(self, prefix: str) -> None:
        super().check(prefix)
        if self.resume not in ("auto", True, False):
            raise ConfigError(f"resume must be auto, true or false, got {self.resume!r}; set resume=auto")


@dataclass
class BenchConfig(TrainConfig):
    """``python -m mlrsnet.bench``: conf/bench.yaml (train.yaml + the benchmark's keys) + a task."""

    schedules: list[Any] = setting(["fixed", "step", "cosine", "greedy", "mlrsnet"], "schedules to compare: any "
                                   "schedule= name")
    seeds: list[int] = setting([0, 1, 2], "every schedule trains with each seed: same split, label noise, data "
                               "order and init")
    tune: bool = setting(True, "tune each schedule's base LR on the meta split (never the test split)")
    lr_grid: list[float] = setting([0.3, 1.0, 3.0], "multipliers of each schedule's base LR tried when tuning")
    tune_epochs: int | None = setting(None, "epochs of a tuning run; null: epochs", ge=1)
    tune_seed: int = setting(0, "seed of the tuning runs")
    target_metric: float | None = setting(0.9, "time to target: first epoch whose test metric reaches this (<= for "
                                          "perplexity); null: off")
    out_dir: str | None = setting(None, "null: Hydra's run directory; share one across multirun jobs to get one "
                                  "table")
    select: str | None = setting(None, "null | fastest (FastSpiker's LR-policy selection, on the meta split only)",
                                 choices=("fastest",))
    select_params: dict[str, Any] = setting({"tolerance": 0.01, "alpha": 0.05, "test": "ttest", "unit": "epochs"},
                                            "FastSpiker's selection: test ttest | wilcoxon; unit epochs | seconds")
    jobs: int | None = setting(None, "runs at a time, as separate processes with one torch thread each (the tuning "
                               "candidates, then the seeds); null: the CPUs this process may use; 1: one run at a "
                               "time in this process, with `threads` threads", ge=1)

    def check(self, prefix: str) -> None:
        super().check(prefix)
        if not self.schedules:
            raise ConfigError("schedules must be a non-empty list, e.g. schedules=[fixed,cosine,mlrsnet]")
        for name in self.schedules:
            get_schedule(str(name))
        if len(set(self.schedules)) != len(self.schedules):
            raise ConfigError(f"schedules lists a name twice: {self.schedules}")
        if not self.seeds or len(set(self.seeds)) != len(self.seeds):
            raise ConfigError(f"seeds must be a non-empty list of distinct integers, e.g. seeds=[0,1,2]; got "
                              f"{self.seeds}")
        if not self.lr_grid or not all(m > 0 for m in self.lr_grid):
            raise ConfigError(f"lr_grid must be a non-empty list of positive LR multipliers, e.g. "
                              f"lr_grid=[0.3,1,3]; got {self.lr_grid}")
        if self.select == "fastest" and self.select_params.get("target", self.target_metric) is None:
            raise ConfigError("select=fastest needs a target: set target_metric=VALUE or select_params.target=VALUE")


@dataclass
class QueryConfig:
    name: str = setting("???", "set by the query file")
    axis: str = setting("???", "what the query changes: epochs, architecture, data, modality...")


@dataclass
class TransferConfig(RunConfig):
    """``python -m mlrsnet.transfer``: conf/transfer.yaml + a query. ``checkpoint``, ``reading``, ``gamma``,
    ``gamma_min`` and ``gamma_from`` are the parameters of the query's frozen MLR-SNet (``schedule=mlrsnet_frozen``)."""

    meta: MetaConfig = setting(MetaConfig(), "the meta batch size the task configs refer to; transfer takes no meta "
                               "steps")
    net: NetConfig = setting(NetConfig(), "read by no transfer run; a query's task may set it")
    query: QueryConfig = setting(QueryConfig(), "the query (conf/query/NAME.yaml)")
    checkpoint: Any = setting(FrozenParams.checkpoint, help_of(FrozenParams, "checkpoint"))
    reading: str = setting(FrozenParams.reading, help_of(FrozenParams, "reading"))
    gamma: Any = setting(FrozenParams.gamma, help_of(FrozenParams, "gamma"))
    gamma_min: float = setting(FrozenParams.gamma_min, help_of(FrozenParams, "gamma_min"), ge=0)
    gamma_from: str = setting(FrozenParams.gamma_from, help_of(FrozenParams, "gamma_from"))
    compare: Any = setting([], "also train the query under these schedules (any schedule= name but mlrsnet), each "
                           "with the same seed, initialisation and data order: compare=[multistep,cosine]")

    def frozen(self) -> FrozenParams:
        """The parameters of the query's frozen MLR-SNet."""
        return parse(FrozenParams, {"checkpoint": self.checkpoint, "reading": self.reading, "gamma": self.gamma,
                                    "gamma_min": self.gamma_min, "gamma_from": self.gamma_from}, "")

    def check(self, prefix: str) -> None:
        super().check(prefix)
        self.frozen()
        if isinstance(self.compare, str):
            self.compare = [self.compare]
        self.compare = list(self.compare or [])
        for name in self.compare:
            if name == "mlrsnet":
                raise ConfigError("compare: mlrsnet is meta-trained in place (python -m mlrsnet.train); the transfer "
                                  "run itself is the frozen MLR-SNet, so leave it out of compare")
            get_schedule(name)


@dataclass
class EnsembleConfig(TrainConfig):
    """``python -m mlrsnet.ensemble``: conf/ensemble.yaml (train.yaml + LREnsemble's keys) + a task; the pool,
    methods and combiners are checked by :func:`mlrsnet.ensemble.study.validate_ensemble`."""

    seeds: list[int] = setting([0, 1, 2], "one pool, one selection and one table row per seed")
    from_bench: str | None = setting(None, "a finished `python -m mlrsnet.bench` out_dir: its runs are the pool")
    pool: Any = setting(None, "[{name, schedule, params, lr_multipliers}, ...]: one base model per entry and "
                        "multiplier")
    methods: list[str] = setting(["all", "brute", "greedy", "focal"], "team selection methods")
    combiners: list[str] = setting(["soft", "plurality"], "how a team's predictions are combined")
    max_team_size: int = setting(4, "brute and focal: teams of 2..max_team_size distinct members", ge=2)
    max_teams: int = setting(20000, "brute and focal are skipped when there are more teams than this", ge=2)
    greedy: dict[str, Any] = setting({"bag_size": 10, "init_k": 0}, "Caruana's greedy selection")
    focal: dict[str, Any] = setting({"metrics": ["CK", "QS", "BD", "FK", "KW", "GD"]}, "focal-diversity pruning")
    out_dir: str | None = setting(None, "null: Hydra's run directory")


@dataclass
class RLSection:
    """The agent's settings: how it observes and acts (:class:`~mlrsnet.schedules.rl_policy.AgentSpec`, stored with
    a policy) and how PPO trains it."""

    total_timesteps: int = setting(3000, "agent steps (decisions); PPO budgets here are small: CPU is scarce", ge=1)
    seed_range: list[int] = setting([100, 100000], "episode run seeds are drawn from [low, high); seeds below low stay "
                                    "held out (nmf_synthetic: a fresh matrix per seed)")
    decision_interval: int | None = setting(AgentSpec.decision_interval, "training steps between decisions; null: "
                                            "ceil(total steps / decisions)", ge=1)
    decisions: int = setting(AgentSpec.decisions, "decisions per episode", ge=1)
    actions: list[float] = setting(list(DEFAULT_ACTIONS), "LR multipliers")
    lr_min_factor: float = setting(AgentSpec.lr_min_factor, "the LR stays in [lr_min_factor, lr_max_factor] * "
                                   "optimizer.lr", gt=0, le=1)
    lr_max_factor: float = setting(AgentSpec.lr_max_factor, "see lr_min_factor", ge=1)
    ema_beta: float = setting(AgentSpec.ema_beta, "EMA of the training loss in the state", ge=0, lt=1)
    safe: bool = setting(False, "clip every step's LR to the task's stability bound (NMF tasks)")
    terminal_weight: float = setting(1.0, "terminal reward: terminal_weight * (log v_0 - log v_T), v the meta-split "
                                     "loss")
    divergence_penalty: float = setting(10.0, "reward of an episode that diverges: minus this")
    net_arch: list[int] = setting([32, 32], "actor and critic MLPs (tanh)")
    ppo: dict[str, Any] = setting({"n_steps": 256, "batch_size": 64, "n_epochs": 4, "learning_rate": 3.0e-4,
                                   "gamma": 0.99, "gae_lambda": 0.95, "ent_coef": 0.01},
                                  "stable_baselines3.PPO keyword arguments")

    def check(self, prefix: str) -> None:
        n_steps = int(self.ppo.get("n_steps", 2048))
        if self.total_timesteps < n_steps:
            raise ConfigError(f"{prefix}total_timesteps={self.total_timesteps} is less than one PPO rollout "
                              f"({prefix}ppo.n_steps={n_steps}): PPO would take {n_steps} agent steps; raise "
                              f"{prefix}total_timesteps to {n_steps} or more, or lower {prefix}ppo.n_steps (and "
                              f"{prefix}ppo.batch_size) to at most {self.total_timesteps}")
        if len(self.seed_range) != 2 or not 0 <= self.seed_range[0] < self.seed_range[1]:
            raise ConfigError(f"{prefix}seed_range must be [low, high) with 0 <= low < high, got {self.seed_range}")
        self.spec()

    def spec(self) -> AgentSpec:
        """How the agent observes and acts."""
        return AgentSpec(tuple(self.actions), self.decision_interval, self.decisions, self.lr_min_factor,
                         self.lr_max_factor, self.ema_beta)


@dataclass
class RLConfig(TrainConfig):
    """``python -m mlrsnet.rl train``: conf/rl.yaml (train.yaml + the agent's section ``rl``) + a task."""

    rl: RLSection = setting(RLSection(), "the agent")


CONFIGS: dict[str, type[RunConfig]] = {"train": TrainConfig, "transfer": TransferConfig, "bench": BenchConfig,
                                       "ensemble": EnsembleConfig, "rl": RLConfig}
_BENCH_KEYS = frozenset(f.name for f in fields(BenchConfig)) - frozenset(f.name for f in fields(TrainConfig))


def schedule_choice(cfg: RunConfig, name: str | None = None) -> ScheduleChoice:
    """Schedule ``name`` (default: the chosen one) as run config ``cfg`` sets it: the chosen schedule's composed
    group, or any other schedule's declared defaults with ``schedule_params[name]`` on top."""
    chosen = getattr(cfg, "schedule", None)
    if isinstance(chosen, ScheduleChoice) and name in (None, chosen.name):
        return chosen
    if name is None:
        raise ConfigError("this command has no schedule key; name the schedule")
    decl = get_schedule(name)
    extra = dict(cfg.schedule_params.get(name) or {})
    optimizer = {**decl.optimizer, **dict(extra.pop("optimizer", None) or {})}
    return ScheduleChoice(name, optimizer, parse_params(name, extra, f"schedule_params.{name}."))


def _parse_schedule(value: Any, legacy: dict[str, Any]) -> ScheduleChoice:
    """The composed ``schedule`` group (``{name, optimizer, <params>}``) or, from Python, just a name."""
    if isinstance(value, str):
        value = {"name": value}
    if not isinstance(value, dict) or "name" not in value:
        if isinstance(value, dict):
            raise ConfigError("schedule has no name; choose one with schedule=NAME")
        raise ConfigError(f"unknown schedule {value!r}; choose one with schedule=NAME")
    name = str(value["name"])
    decl = get_schedule(name)
    optimizer = value.get("optimizer", decl.optimizer)
    if not isinstance(optimizer, dict):
        raise ConfigError(f"schedule.optimizer must be a mapping of optimiser keys, got {optimizer!r}; e.g. "
                          "schedule.optimizer.momentum=0.9")
    extra = dict(legacy.get(name) or {})
    optimizer = {**optimizer, **dict(extra.pop("optimizer", None) or {})}
    params = {k: v for k, v in value.items() if k not in ("name", "optimizer")}
    if extra:  # the deprecated alias: its keys are checked under the name the user gave them
        parse_params(name, extra, f"schedule_params.{name}.")
    return ScheduleChoice(name, optimizer, parse_params(name, {**params, **extra}, "schedule."))


def parse_config(cfg: Any, entry: str = "train") -> RunConfig:
    """A composed config of command ``entry`` (a mapping, interpolations resolved, or an OmegaConf config) as
    its typed config: every key checked against its declaration, the task as its dataset's config, the schedule
    as a :class:`ScheduleChoice`. Every error is one line naming the full key, the value and the fix. A typed
    config is returned as it is."""
    if isinstance(cfg, RunConfig):
        return cfg
    from omegaconf import DictConfig, OmegaConf

    if isinstance(cfg, DictConfig):
        cfg = OmegaConf.to_container(cfg, resolve=True)
    cls = CONFIGS[entry]
    own = {f.name for f in fields(cls)}
    # A task file may carry the bench's defaults for that task (its schedules, LR grid...): other commands
    # ignore those keys rather than reject them.
    data = {k: v for k, v in dict(cfg).items() if (k in own or k not in _BENCH_KEYS) and k != "hydra"}
    if not isinstance(data.get("task"), dict):
        group = "query" if entry == "transfer" else "task"
        raise ConfigError(f"no {group} composed; run `python -m mlrsnet.{entry} +{group}=NAME`")
    typed = parse(cls, data)
    typed.task = parse_task(data["task"])
    if isinstance(typed, TrainConfig):
        typed.schedule = _parse_schedule(data.get("schedule", "mlrsnet"), typed.schedule_params)
    return typed


def _own_defaults(cls: type, parent: type | None) -> dict:
    skip = {"task", "schedule"} | ({f.name for f in fields(parent)} if parent else set())
    return {k: v for k, v in defaults(cls).items() if k not in skip}


def register_command_configs() -> None:
    """Store each command's defaults in Hydra's ConfigStore: ``base/train``, ``base/transfer`` (every key but the
    task and the schedule, which their groups set) and ``base/bench``, ``base/ensemble``, ``base/rl`` (the keys
    each adds to train's)."""
    from hydra.core.config_store import ConfigStore

    store = ConfigStore.instance()
    store.store(group="base", name="train", node=_own_defaults(TrainConfig, None), package="_global_")
    store.store(group="base", name="transfer", node=_own_defaults(TransferConfig, None), package="_global_")
    for name, cls in (("bench", BenchConfig), ("ensemble", EnsembleConfig), ("rl", RLConfig)):
        store.store(group="base", name=name, node=_own_defaults(cls, TrainConfig), package="_global_")
