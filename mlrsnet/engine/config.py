"""The typed schema of every entry point's config, and the one validation of a composed config.

Each entry point's config (``conf/train.yaml``, ``conf/transfer.yaml``, ``conf/bench.yaml`` plus the task or
query composed into it) has a schema here: dataclasses, one per section, read by OmegaConf as structured
configs. :func:`check_types` merges a composed config into its schema; every wrong type or unknown key
becomes a one-line :class:`~mlrsnet.errors.ConfigError` that names the full key (``task.noise.rate``), the
value and the fix. Ranges and choices are checked after the types by :func:`mlrsnet.engine.build.validate` (and the
entry points' own checks), so the types are known to be right there.

The schema only validates: the config a run is built from is the composed one, unchanged. (Task
builders read optional task keys with defaults of their own, ``cfg.get("bptt", 35)``; merging the schema
in would give every absent optional key a ``None``.) ``schedule`` is typed ``Any``: a schedule name, or a
schedule config ``{name, optimizer, <parameters>}``, whose parameters its builder checks.

The schemas are registered in Hydra's ConfigStore under ``schema/<entry point>`` so that they can be
composed or inspected like any other config (``hydra.compose("schema/train")``).
"""

from __future__ import annotations

import difflib
import functools
import types
import typing
from dataclasses import dataclass, field, fields, is_dataclass
from typing import Any

from mlrsnet.errors import ConfigError

__all__ = ["BenchSchema", "EnsembleSchema", "RLSchema", "SCHEMAS", "TrainSchema", "TransferSchema", "check_types",
           "closest_key", "schema_keys"]


@dataclass
class DataSchema:
    root: str = "./data"
    download: bool = True


@dataclass
class OptimizerSchema:
    name: str = "sgd"
    lr: float = 0.1
    momentum: float | None = None  # null: the schedule's own (conf/schedule/NAME.yaml)
    nesterov: bool = False
    weight_decay: float = 5e-4
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    eps: float = 1e-8


@dataclass
class NoiseSchema:
    kind: str = "none"
    rate: float = 0.0


@dataclass
class TaskSchema:
    """The union of the keys of every task (conf/task/*.yaml); each task reads the ones it uses."""

    name: str = ""
    dataset: str = ""
    model: str = ""
    model_kwargs: dict[str, Any] = field(default_factory=dict)
    batch_size: int = 64
    meta_batch_size: int = 100
    meta_size: int = 100
    train_fraction: float = 1.0
    noise: NoiseSchema = field(default_factory=NoiseSchema)
    test_fraction: float = 0.3
    split_seed: int = 0
    data_root: str | None = None
    download: bool = True
    flip: bool = True
    crop_pad: int = 4
    eval_batch_size: int = 1024
    meta_split: str = "valid"
    meta_tokens: int = 0
    bptt: int = 35
    meta_fraction: float = 0.1
    max_chars: int = 400_000
    # spiking tasks (mlrsnet/tasks/snn.py)
    time_steps: int = 8
    encoding: str = "rate"
    latency_threshold: float = 0.01
    event_threshold: float = 0.15
    max_shift: int = 1
    # NMF tasks (mlrsnet/tasks/nmf.py)
    rows: int = 300
    cols: int = 60
    true_rank: int = 8
    rank: int = 8
    noise_level: float = 0.1
    instance_offset: int = 0
    # LLM fine-tuning tasks (mlrsnet/tasks/llm.py)
    base: str | None = None
    lora: Any = None
    train_chars: int = 12000
    eval_chars: int = 6000
    block_size: int = 64


@dataclass
class MetaSchema:
    backend: str = "exact"
    K: int = 1
    first_order: bool = False
    lookahead_advances_state: bool = False
    interval: int = 1
    lr: float = 1e-3
    weight_decay: float = 1e-4
    batch_size: int = 100


@dataclass
class NetSchema:
    hidden_size: int = 50
    gamma: float | None = None
    gamma_min: float = 0.01
    gamma_from: str = "auto"
    l0_over: str = "train"


@dataclass
class GuardSchema:
    on_divergence: str = "stop"
    lr_min: float = 0.0
    lr_max: float | None = None
    lr_factor: float = 0.5
    max_rollbacks: int = 3


@dataclass
class LoggerSchema:
    name: str = "none"
    project: str | None = None
    entity: str | None = None
    group: str | None = None
    tags: list[str] = field(default_factory=list)
    run_name: str | None = None
    mode: str | None = None
    dir: str | None = None
    log_checkpoint: bool = True


@dataclass
class _Common:
    """Keys every entry point shares."""

    seed: int = 0
    device: str = "cpu"
    threads: int | None = None
    epochs: int = 10
    batch_size: int = 64
    grad_clip: float | None = None
    amp: bool = False
    channels_last: bool = False
    compile: bool = False
    data: DataSchema = field(default_factory=DataSchema)
    optimizer: OptimizerSchema = field(default_factory=OptimizerSchema)
    task: TaskSchema = field(default_factory=TaskSchema)
    schedule_params: dict[str, Any] = field(default_factory=dict)
    progress: bool = True
    log_steps: bool = True


@dataclass
class TrainSchema(_Common):
    """conf/train.yaml + a task."""

    logger: LoggerSchema = field(default_factory=LoggerSchema)
    schedule: Any = "mlrsnet"
    meta: MetaSchema = field(default_factory=MetaSchema)
    net: NetSchema = field(default_factory=NetSchema)
    copy_to_checkpoints: bool = False
    checkpoints_dir: str = "checkpoints"
    snapshots: int = 5
    resume: Any = "auto"
    save_every: int = 1
    guard: GuardSchema = field(default_factory=GuardSchema)


@dataclass
class BenchSchema(TrainSchema):
    """conf/bench.yaml (train.yaml + the benchmark's keys) + a task."""

    schedules: list[Any] = field(default_factory=list)
    seeds: list[int] = field(default_factory=list)
    tune: bool = True
    lr_grid: list[float] = field(default_factory=list)
    tune_epochs: int | None = None
    tune_seed: int = 0
    target_metric: float | None = 0.9
    out_dir: str | None = None
    select: str | None = None
    select_params: dict[str, Any] = field(default_factory=dict)


@dataclass
class QuerySchema:
    name: str = ""
    axis: str = ""


@dataclass
class TransferSchema(_Common):
    """conf/transfer.yaml + a query. ``checkpoint`` (a path, a list of paths or null), ``gamma``
    (recompute, checkpoint or a number) and ``compare`` (a name or a list) take more than one type and
    are checked by :func:`mlrsnet.transfer.validate_transfer`."""

    # A query composes a task config, which also sets the training settings of meta-training runs on that
    # task (meta.*, net.*); the transfer reads meta.batch_size only.
    meta: MetaSchema = field(default_factory=MetaSchema)
    net: NetSchema = field(default_factory=NetSchema)
    query: QuerySchema = field(default_factory=QuerySchema)
    checkpoint: Any = None
    gamma: Any = "recompute"
    gamma_min: float = 0.01
    gamma_from: str = "auto"
    compare: Any = field(default_factory=list)


@dataclass
class EnsembleSchema(TrainSchema):
    """conf/ensemble.yaml (train.yaml + LREnsemble's keys) + a task; the pool, greedy and focal sections are
    checked by :func:`mlrsnet.ensemble.study.validate_ensemble`."""

    seeds: list[int] = field(default_factory=list)
    from_bench: str | None = None
    pool: Any = None
    methods: list[str] = field(default_factory=list)
    combiners: list[str] = field(default_factory=list)
    max_team_size: int = 4
    max_teams: int = 20000
    greedy: dict[str, Any] = field(default_factory=dict)
    focal: dict[str, Any] = field(default_factory=dict)
    out_dir: str | None = None


@dataclass
class RLSchema(TrainSchema):
    """conf/rl.yaml (train.yaml + the agent's section ``rl``, checked by :mod:`mlrsnet.rl.agent`) + a task."""

    rl: dict[str, Any] = field(default_factory=dict)


_BENCH_KEYS = frozenset(f.name for f in fields(BenchSchema))

SCHEMAS: dict[str, type] = {"train": TrainSchema, "transfer": TransferSchema, "bench": BenchSchema,
                            "ensemble": EnsembleSchema, "rl": RLSchema}


def _register() -> None:
    from hydra.core.config_store import ConfigStore

    store = ConfigStore.instance()
    for name, schema in SCHEMAS.items():
        store.store(group="schema", name=name, node=schema)


_register()


def _field_type(schema: type, key: str) -> Any:
    """The annotation of dotted ``key`` in ``schema`` (None when the key is not in it)."""
    hints: Any = schema
    for part in key.split("."):
        if not (isinstance(hints, type) and is_dataclass(hints)):
            return None
        found = typing.get_type_hints(hints).get(part)
        if found is None:
            return None
        hints = found
    return hints


def _describe(kind: Any) -> tuple[str, str]:
    """``(phrase, placeholder)`` for a field type: ``("an integer", "<integer>")``."""
    args = typing.get_args(kind)
    if typing.get_origin(kind) in (typing.Union, types.UnionType) and type(None) in args:
        inner = next(a for a in args if a is not type(None))
        phrase, placeholder = _describe(inner)
        return f"{phrase} or null", placeholder
    origin = typing.get_origin(kind) or kind
    if origin is list:
        item = _describe(args[0])[0] if args else "values"
        item = {"an integer": "integers", "a number": "numbers", "a string": "strings"}.get(item, "values")
        return f"a list of {item}", "[a,b]"
    if origin is dict or (isinstance(kind, type) and is_dataclass(kind)):
        return "a mapping of keys to values", "{key: value}"
    return {int: ("an integer", "<integer>"), float: ("a number", "<number>"), bool: ("true or false", "true"),
            str: ("a string", "<text>")}.get(kind, ("a value", "<value>"))


def schema_keys(schema: type, prefix: str = "") -> list[str]:
    """Every leaf key of ``schema``, dotted: ``["seed", ..., "task.noise.kind", ...]``."""
    out = []
    for f in fields(schema):
        kind = typing.get_type_hints(schema)[f.name]
        if isinstance(kind, type) and is_dataclass(kind):
            out += schema_keys(kind, f"{prefix}{f.name}.")
        else:
            out.append(prefix + f.name)
    return out


def closest_key(schema: type, key: str) -> str | None:
    """The existing key of ``schema`` closest to a misspelt ``key`` (``epoch`` -> ``epochs``), or None."""
    keys = schema_keys(schema)
    sections = {k.rsplit(".", 1)[0] for k in keys if "." in k}
    matches = difflib.get_close_matches(key, keys + sorted(sections), n=1, cutoff=0.6)
    return matches[0] if matches else None


@functools.cache
def _structured(entry: str) -> Any:
    """The schema of ``entry`` as an OmegaConf structured config (built once; merging copies it)."""
    from omegaconf import OmegaConf

    return OmegaConf.structured(SCHEMAS[entry])


def check_types(cfg: dict, entry: str) -> dict:
    """Check every key of a composed, resolved config of entry point ``entry`` (train / transfer / bench)
    against its schema; the first wrong type or unknown key is a one-line :class:`ConfigError`. Returns
    the config with every value converted to its schema type and the schema's defaults filled in, for
    range checks (a run is built from ``cfg`` itself)."""
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    schema = SCHEMAS[entry]
    # A task file may carry the bench's defaults for that task (its schedules, LR grid...): other entry
    # points ignore those keys rather than reject them.
    own = {f.name for f in fields(schema)}
    cfg = {k: v for k, v in cfg.items() if k in own or k not in _BENCH_KEYS}
    try:
        merged = OmegaConf.merge(_structured(entry), cfg)
        return OmegaConf.to_container(merged, resolve=True)  # type: ignore[return-value]
    except OmegaConfBaseException as e:
        raise _one_line(schema, e, cfg) from None


def _lookup(cfg: Any, key: str) -> Any:
    for part in key.split("."):
        if not isinstance(cfg, dict) or part not in cfg:
            return None
        cfg = cfg[part]
    return cfg


def _one_line(schema: type, e: Any, cfg: dict) -> ConfigError:
    key = str(getattr(e, "full_key", "") or getattr(e, "key", "") or "")
    kind = _field_type(schema, key) if key else None
    if kind is None or type(e).__name__ == "ConfigKeyError":
        near = closest_key(schema, key) if key else None
        hint = f"did you mean {near}?" if near else "see the keys with --cfg job"
        return ConfigError(f"unknown config key {key or '?'}; {hint}")
    value = _lookup(cfg, key)
    phrase, placeholder = _describe(kind)
    return ConfigError(f"{key} must be {phrase}, got {value!r}; set {key}={placeholder}")

