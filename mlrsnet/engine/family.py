"""Meta-training one MLR-SNet over a family of tasks: ``python -m mlrsnet.train +family=NAME``.

The paper meta-trains its net on one task and hopes it transfers; learned_optimization trains learned optimizers
over task families. Here several tasks train side by side and one MLR-SNet schedules, and is meta-trained on,
all of them. ``conf/family/NAME.yaml`` lists the members (:class:`FamilyConfig`)::

    family:
      name: tiny
      sampling: round_robin          # round_robin | proportional
      members:
        digits: {task: digits_mlp, overrides: [epochs=2, task.train_fraction=0.3]}
        nmf: {task: nmf_synthetic, overrides: [epochs=2, task.rows=60]}

**Configs.** Each member's config is composed as ``python -m mlrsnet.train +task=TASK <family.overrides>
<its overrides>`` would compose it, so it trains with its own task file's epochs, batch size, optimiser, meta
interval and gamma settings: members with different budgets each train to their own epochs, and a member
that is done drops out of the rotation while the others go on. The family level (``conf/train.yaml``, the
family file, the command line) sets what the members share: the run keys (:data:`SHARED_KEYS`: seed, device,
threads, logging, resume, saving, the guard, data) and the shared net and its meta-optimiser (``net.hidden_size``,
``net.cell``, ``meta.lr``, ``meta.weight_decay``). A per-member key set at the family level (``epochs=3`` on the
command line) would be ignored, so it is an error (:data:`MEMBER_KEYS`): set it in ``family.overrides`` (every
member) or in a member's ``overrides``.

**One net, per-member state.** Every member is built by :func:`~mlrsnet.engine.build.build_run` as a single
``schedule=mlrsnet`` run (its own task, model, optimiser, data and L0) and stepped by its own
:class:`~mlrsnet.engine.loop.Trainer`. The members' fresh nets are the same net (same seed, size and cell); the
first one is kept and every member's LR driver and :class:`~mlrsnet.meta.engine.MetaEngine` is pointed at it, with
one shared Adam meta-optimiser. What stays per member is swapped in around each of its steps: its gamma (the
paper's formula from its own L0 and C, as ``schedule=mlrsnet`` computes it) and the net's LSTM state (h, c), so
each task's loss history is its own sequence.

**The net's input.** ``family.input_scale=task`` (the default) feeds each member's loss divided by its task's
``loss_scale``: ln(vocabulary) for a language model, 1 for classification and NMF, exactly as a single-task run
and, more to the point, as :mod:`mlrsnet.transfer` and :class:`~mlrsnet.schedules.scheduler.MLRSNetScheduler`
feed a bundle on a query, so the family bundle is read as it was trained. ``ln_classes`` divides every loss by
ln C (C >= 2; the task's own scale otherwise), so that a classifier's initial loss is ~1 like a language model's;
a bundle trained so is then fed the raw loss of a classification query by the transfer code (a mismatch by ln C),
so use it for study only. Single-task runs are unchanged either way.

**Sampling and the meta loss.** The family advances one member step at a time. ``round_robin`` cycles through
the members not yet done; ``proportional`` steps the member furthest behind its share of its own budget (the
smallest (steps done + 1) / total steps, ties in the family's order), so that all members finish together. Both
are deterministic, so a resumed run takes the same steps. Each step is the member's own training step, with its
own meta step where its ``meta.interval`` says: the net is updated on the meta loss of the task just stepped,
not on a sum over tasks. With Adam over a rotation of tasks this is the stochastic form of the summed (mean)
meta-objective, it takes the same meta updates as the members' single-task runs (so the family costs what they
cost), and it lets members with different step counts and meta intervals interleave freely; a sum would need
every member at a step at once and a meta-LR rescaled by the family size.

**Outputs.** The run directory holds one ``metrics.jsonl`` (every line carries ``"task": <member>``),
``run_state.pt`` (every member's position and state, the shared net and meta-optimiser, the rotation's cursor:
SIGTERM saves and exits 75, the same command resumes it with the same numbers), ``members/<name>/`` (the
member's ``config.yaml``, ``summary.json`` and ``lr_schedule.*``), ``summary.json`` (the family's record with
every member's final metrics), ``snapshots/``, ``mlrsnet.pt`` and ``mlrsnet_bundle.pt``. The family's progress is
counted in epochs of its longest member, ``E``: the family is at epoch e once e / E of all its steps are done,
and the bundle holds the net after epochs 1, E/2 and E of that count. The bundle records the family (its members,
their tasks, classes, loss scales, L0 and gammas); its nets carry the first member's gamma (``gamma=recompute``,
the transfer default, replaces it anyway).

**Extras.** A member whose dataset needs an optional extra that is not installed (``llm``: transformers and peft;
``snn``: snnTorch, tonic) is a one-line error naming the extra, before anything trains.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import functools
import importlib.util
import math
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlrsnet.checkpoint import BUNDLE_FILE, SNAPSHOT_DIR, load_mlrsnet, save_bundle, save_mlrsnet
from mlrsnet.engine.build import Run, build_run
from mlrsnet.engine.config import TrainConfig, parse_config
from mlrsnet.engine.figures import save_lr_schedule
from mlrsnet.engine.fingerprint import RESUMABLE, config_dict
from mlrsnet.engine.log import RunLogger, dump_config, environment, read_metrics
from mlrsnet.engine.loop import Diverged, Trainer
from mlrsnet.engine.resume import (
    RUN_STATE,
    StopSignals,
    bundle_epochs,
    check_same_config,
    load_run_state,
    loop_position,
    save_run_state,
    snapshot_epochs,
)
from mlrsnet.engine.runner import RUN_OUTPUTS, RunRecord
from mlrsnet.errors import ConfigError, DivergenceError, MLRSNetError, RunInterrupted
from mlrsnet.io import atomic_write_json, atomic_write_text, file_sha256
from mlrsnet.net import MLRSNet
from mlrsnet.rundir import open_run_dir
from mlrsnet.typed import parse, setting

__all__ = ["FamilyConfig", "FamilyMember", "FamilyPlan", "MEMBER_KEYS", "SHARED_KEYS", "execute_family",
           "is_family", "parse_family"]

SAMPLING = ("round_robin", "proportional")
INPUT_SCALES = ("task", "ln_classes")
# Run keys the family level sets for every member.
SHARED_KEYS = ("seed", "device", "threads", "progress", "log_steps", "data", "amp", "channels_last", "compile",
               "logger", "copy_to_checkpoints", "checkpoints_dir", "snapshots", "resume", "save_every", "guard")
# The shared net and its meta-optimiser: set at the family level too.
SHARED_NET = ("hidden_size", "cell")
SHARED_META = ("lr", "weight_decay")
# Keys each member takes from its own task file: at the family level they must keep their defaults.
MEMBER_KEYS = ("epochs", "batch_size", "grad_clip", "optimizer", "schedule_params", "meta.backend", "meta.K",
               "meta.first_order", "meta.lookahead_advances_state", "meta.interval", "meta.counter",
               "meta.batch_size", "net.gamma", "net.gamma_min", "net.gamma_from", "net.l0_over")
# Datasets that need an optional extra: the extra and the modules it provides.
EXTRAS = {"stdlib_source": ("llm", ("transformers", "peft")), "snn_digits": ("snn", ("snntorch",)),
          "snn_events": ("snn", ("snntorch",)), "nmnist": ("snn", ("snntorch", "tonic"))}
MEMBERS_DIR = "members"


@dataclass
class FamilyMember:
    """One member of a family: a task file and the overrides it trains with."""

    task: str | None = setting(None, "the task (conf/task/NAME.yaml, as +task=NAME); null: the member's name")
    overrides: list[str] = setting([], "key=value overrides of this member, after family.overrides (e.g. "
                                   "[epochs=5, task.train_size=5000])")


@dataclass
class FamilyConfig:
    """The ``family`` section (``+family=NAME``: conf/family/NAME.yaml)."""

    name: str = setting("???", "the family's name")
    members: dict[str, Any] = setting({}, "member name -> {task, overrides}; two members or more")
    overrides: list[str] = setting([], "key=value overrides of every member, before its own")
    sampling: str = setting("round_robin", "which member takes the next step: round_robin (in turn, among those "
                            "not done) | proportional (the one furthest behind its share of its own budget: all "
                            "finish together)", choices=SAMPLING)
    input_scale: str = setting("task", "the net's input: task (loss / the task's loss_scale, as single-task runs "
                               "and transfer feed it) | ln_classes (loss / ln C for every task with C >= 2)",
                               choices=INPUT_SCALES)


@dataclass
class FamilyPlan:
    """A validated family run: its family-level config (no task), its section, and each member's full config."""

    top: TrainConfig
    family: FamilyConfig
    members: dict[str, TrainConfig]

    def plain(self) -> dict:
        """The family's config as saved in run_state.pt and compared on resume."""
        skip = RESUMABLE | {"epochs"}
        return {**config_dict(self.top), "family": config_dict(self.family),
                "members": {n: {k: v for k, v in config_dict(c).items() if k not in skip}
                            for n, c in self.members.items()}}


def is_family(cfg: Any) -> bool:
    """Whether a composed train config is a family run (``+family=NAME``)."""
    try:
        return "family" in cfg and cfg["family"] is not None
    except TypeError:
        return False


def _available_tasks() -> list[str]:
    from mlrsnet.engine.cli import available_configs

    return available_configs("task")


@functools.cache
def _composed_member(overrides: tuple[str, ...]) -> Any:
    """``conf/train.yaml`` composed with ``overrides`` (unresolved), from inside a running Hydra app or not: the
    global Hydra state of the caller is put back afterwards."""
    from hydra.errors import HydraException
    from hydra.initialize import get_gh_backup, restore_gh_from_backup

    from mlrsnet.engine.cli import compose, hydra_error

    backup = get_gh_backup()
    try:
        return compose("train", list(overrides))
    except HydraException as e:
        raise ConfigError(hydra_error(e, "task", "train") or str(e).splitlines()[0]) from None
    finally:
        restore_gh_from_backup(backup)


def _get(obj: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        obj = getattr(obj, part)
    return obj


def require_extras(member: str, cfg: TrainConfig) -> None:
    """A one-line :class:`ConfigError` naming the extra a member's dataset needs, where it is not installed."""
    dataset = cfg.task.dataset
    extra, modules = EXTRAS.get(dataset, (None, ()))
    missing = [m for m in modules if importlib.util.find_spec(m) is None]
    if missing:
        raise ConfigError(f"family member {member} (task {cfg.task.name}) needs the {extra} extra ({missing[0]} is "
                          f"missing): pip install 'mlrsnet[{extra}]', or drop the member from the family")


def parse_family(cfg: Any) -> FamilyPlan:
    """A composed ``+family=NAME`` config as a :class:`FamilyPlan`: the family section checked (two members or more,
    each a known task), the family-level keys checked, and every member's config composed and validated. Every
    error is one line (:class:`ConfigError`, exit code 2)."""
    from omegaconf import DictConfig, OmegaConf

    if isinstance(cfg, DictConfig):
        cfg = OmegaConf.to_container(cfg, resolve=True)
    data = {k: v for k, v in dict(cfg).items() if k != "hydra"}
    family = parse(FamilyConfig, data.pop("family") or {}, "family.")
    if "task" in data and data["task"] is not None:
        raise ConfigError("give +task=NAME or +family=NAME, not both; a family lists its tasks in family.members")
    if not isinstance(family.members, dict) or len(family.members) < 2:
        raise ConfigError(f"family {family.name} has {len(family.members or {})} member(s); a family needs two tasks "
                          "or more (family.members), or train one task with +task=NAME")
    members = {name: parse(FamilyMember, dict(spec or {}), f"family.members.{name}.")
               for name, spec in family.members.items()}
    known = _available_tasks()
    for name, member in members.items():
        task = member.task or name
        if task not in known:
            raise ConfigError(f"family {family.name}: member {name} names unknown task {task!r}; use one of: "
                              f"{', '.join(known)}")
    schedule = data.get("schedule")
    schedule = schedule.get("name") if isinstance(schedule, dict) else schedule
    if schedule not in (None, "mlrsnet"):
        raise ConfigError(f"a family run meta-trains MLR-SNet; schedule={schedule} is a single-task option: drop it")
    data["schedule"] = "mlrsnet"
    top = parse(TrainConfig, data)
    assert isinstance(top, TrainConfig)
    default = TrainConfig()
    for key in MEMBER_KEYS:
        if _get(top, key) != _get(default, key):
            raise ConfigError(f"{key} is set per member in a family run (each member keeps its task file's); set it "
                              f"in family.overrides (every member) or family.members.<name>.overrides, not at the top "
                              "level")
    if top.logger.name != "none":
        raise ConfigError(f"logger={top.logger.name}: a family run writes metrics.jsonl only (every line names its "
                          "task); set logger=none")
    shared = {k: data[k] for k in SHARED_KEYS if k in data}
    shared["net"] = {k: data["net"][k] for k in SHARED_NET if k in data.get("net", {})}
    shared["meta"] = {k: data["meta"][k] for k in SHARED_META if k in data.get("meta", {})}
    typed: dict[str, TrainConfig] = {}
    for name, member in members.items():
        overrides = (f"+task={member.task or name}", *family.overrides, *member.overrides)
        try:
            composed = OmegaConf.merge(copy.deepcopy(_composed_member(overrides)), shared)
            member_cfg = parse_config(composed, "train")
        except MLRSNetError as e:
            raise type(e)(f"family {family.name}, member {name}: {e}") from None
        assert isinstance(member_cfg, TrainConfig)
        require_extras(name, member_cfg)
        typed[name] = member_cfg
    return FamilyPlan(top, family, typed)


# ---- the run ---------------------------------------------------------------------------------------------------


class _Tagged:
    """The family's logger as one member's trainer sees it: every line carries ``"task": <member>``."""

    def __init__(self, logger: RunLogger, name: str) -> None:
        self.logger, self.name = logger, name

    def log(self, record: dict[str, Any]) -> None:
        self.logger.log({**record, "task": self.name})

    def log_many(self, records: list[dict[str, Any]]) -> None:
        self.logger.log_many([{**r, "task": self.name} for r in records])


@dataclass
class _Member:
    """One member: its run and trainer, and what of the shared net is its own (gamma, LSTM state)."""

    name: str
    cfg: TrainConfig
    run: Run
    trainer: Trainer
    gamma: float
    scale: float
    state: Any = None

    @property
    def total_steps(self) -> int:
        return self.run.total_steps


def _input_scale(run: Run, mode: str) -> float:
    info = run.task.info
    if mode == "ln_classes" and info.num_classes >= 2:
        return math.log(info.num_classes)
    return float(info.loss_scale)


class _FamilyRun:
    """Builds the members around one net, steps them by the sampling rule, saves and resumes them as one run."""

    def __init__(self, plan: FamilyPlan, run_dir: Path, stop: StopSignals, config_yaml: str | None) -> None:
        self.plan, self.run_dir, self.stop = plan, run_dir, stop
        self.top, self.name = plan.top, plan.family.name
        self.path = run_dir / RUN_STATE
        self.plain = plan.plain()
        self.saved = self._previous()
        runs = {name: self._build(name, cfg) for name, cfg in plan.members.items()}
        self.logger = RunLogger(run_dir, config_yaml=config_yaml or dump_config(self.plain),
                                resume_at=None if self.saved is None else self.saved["metrics_bytes"])
        self.members = [self._member(name, plan.members[name], run) for name, run in runs.items()]
        first = self.members[0].run
        assert first.net is not None and first.engine is not None
        self.net: MLRSNet = first.net
        for m in self.members:  # one net and one meta-optimiser for all
            assert m.run.engine is not None
            m.run.net = m.run.driver.net = m.run.engine.net = self.net  # type: ignore[attr-defined]
            m.run.engine.meta_optimizer = first.engine.meta_optimizer
        self.total = sum(m.total_steps for m in self.members)
        self.epochs = max(m.cfg.epochs for m in self.members)
        self.bundle = bundle_epochs(self.epochs)
        self.snapshots = snapshot_epochs(self.epochs, self.top.snapshots) | set(self.bundle)
        self.cursor, self.rollbacks, self.wall_before = -1, 0, 0.0
        self.t0 = time.perf_counter()
        self.save_due = False

    # -- building and state --

    def _previous(self) -> dict | None:
        resume = self.top.resume
        if resume is False:
            return None
        if not self.path.is_file():
            if resume is True:
                raise ConfigError(f"resume=true but {self.run_dir} has no {RUN_STATE}; point hydra.run.dir at the "
                                  "directory of the run to continue, or drop resume=true to start a new run")
            return None
        saved = load_run_state(self.path)
        if "members" not in saved:
            raise ConfigError(f"{self.path} holds a single-task run, not family {self.name}; choose another "
                              "hydra.run.dir or pass resume=false to start over")
        check_same_config(saved["config"], self.plain, self.path)
        for name, state in saved["members"].items():
            epochs = self.plan.members[name].epochs
            if state["epoch"] > epochs:
                raise ConfigError(f"{self.run_dir} holds family member {name} with {state['epoch']} epochs complete; "
                                  f"its epochs={epochs} would end it before where it stands: raise it, or resume=false")
        return saved

    def _build(self, name: str, cfg: TrainConfig) -> Run:
        saved = None if self.saved is None else self.saved["members"][name]
        run = build_run(cfg, l0=None if saved is None else float(saved["initial_loss"]))
        scale = _input_scale(run, self.plan.family.input_scale)
        run.task.info = dataclasses.replace(run.task.info, loss_scale=scale)  # what the engine divides by
        run.driver.loss_scale = scale  # type: ignore[attr-defined]
        return run

    def _member(self, name: str, cfg: TrainConfig, run: Run) -> _Member:
        loop_cfg = run.loop_config(f"{self.name}/{name}", progress=False,
                                   epoch_lines=self.top.progress is not False)
        trainer = Trainer(run.task, run.train_model, run.optimizer, run.driver, loop_cfg,
                          _Tagged(self.logger, name), run.engine,  # type: ignore[arg-type]
                          on_epoch_end=lambda epoch, *_: self._epoch_ended(cfg, epoch))
        assert run.net is not None
        return _Member(name, cfg, run, trainer, float(run.net.gamma), float(run.task.info.loss_scale))

    def _epoch_ended(self, cfg: TrainConfig, epoch: int) -> None:
        if epoch % self.top.save_every == 0 or epoch == cfg.epochs:
            self.save_due = True

    @contextlib.contextmanager
    def active(self, m: _Member) -> Iterator[None]:
        """The shared net as member ``m`` uses it: its gamma and its LSTM state."""
        self.net.set_gamma(m.gamma)
        self.net.state = m.state
        try:
            yield
        finally:
            m.state = self.net.state

    def wall_time(self) -> float:
        return self.wall_before + time.perf_counter() - self.t0

    @property
    def done_steps(self) -> int:
        return sum(m.trainer.global_step for m in self.members)

    def family_epoch(self) -> int:
        """The family's progress in epochs of its longest member (the module docstring)."""
        return self.epochs * self.done_steps // self.total

    def save(self) -> None:
        members = {}
        for m in self.members:
            position = m.trainer.position()
            progress = position["progress"]
            with self.active(m):
                training = m.run.state_dict()
            members[m.name] = {"epoch": position["start_epoch"], "global_step": position["global_step"],
                               "history": position["history"],
                               "progress": None if progress is None else progress.state_dict(),
                               "training": training, "initial_loss": m.run.l0, "gamma": m.gamma}
        save_run_state(self.path, {
            "config": self.plain, "epoch": self.family_epoch(), "global_step": self.done_steps, "members": members,
            "cursor": self.cursor, "metrics_bytes": self.logger.position(), "wall_time_s": self.wall_time(),
            "rollbacks": self.rollbacks, "family": self.name})
        self.save_due = False

    def restore(self, state: dict) -> None:
        """Every member, the shared net and the rotation as ``state`` (a run_state.pt) left them."""
        for m in self.members:
            mine = state["members"][m.name]
            m.gamma = float(mine["gamma"])
            with self.active(m):
                m.run.load_state_dict(mine["training"])
            m.trainer.close()
            m.trainer.init(**loop_position(mine))
        self.cursor = int(state["cursor"])
        self.rollbacks = int(state["rollbacks"])

    def snapshot(self, epoch: int) -> None:
        if epoch in self.snapshots:
            first = self.members[0]
            with self.active(first):
                save_mlrsnet(self.run_dir / SNAPSHOT_DIR / f"mlrsnet_epoch{epoch:04d}.pt", self.net,
                             task=self.name, num_classes=first.run.task.info.num_classes, loss_scale=first.scale,
                             initial_loss=first.run.l0, epoch=epoch, state=self.net.state, **self._family_meta())

    def _family_meta(self) -> dict:
        return {"family": self.name, "members": [m.name for m in self.members],
                "member_tasks": {m.name: m.run.task.info.name for m in self.members},
                "member_num_classes": {m.name: m.run.task.info.num_classes for m in self.members},
                "member_loss_scales": {m.name: m.scale for m in self.members},
                "member_initial_losses": {m.name: m.run.l0 for m in self.members},
                "member_gammas": {m.name: m.gamma for m in self.members},
                "sampling": self.plan.family.sampling, "input_scale": self.plan.family.input_scale}

    # -- stepping --

    def next_member(self) -> _Member:
        live = [i for i, m in enumerate(self.members) if not m.trainer.done]
        if self.plan.family.sampling == "proportional":
            i = min(live, key=lambda j: ((self.members[j].trainer.global_step + 1) / self.members[j].total_steps, j))
        else:
            i = next((j for j in live if j > self.cursor), live[0])
        self.cursor = i
        return self.members[i]

    def run(self) -> dict:
        if self.saved is None:
            for folder in (SNAPSHOT_DIR, MEMBERS_DIR):
                shutil.rmtree(self.run_dir / folder, ignore_errors=True)
            for name in RUN_OUTPUTS:
                (self.run_dir / name).unlink(missing_ok=True)
            for m in self.members:
                m.trainer.init()
            self.snapshot(0)
            self.save()
        else:
            self.restore(self.saved)
            self.wall_before = float(self.saved["wall_time_s"])
            print(f"resuming {self.run_dir} after {self.saved['global_step']} of {self.total} steps", flush=True)
        try:
            while not all(m.trainer.done for m in self.members):
                before = self.family_epoch()
                m = self.next_member()
                try:
                    with self.active(m):
                        m.trainer.step()
                except Diverged as d:
                    self.recover(m, d)
                    continue
                for epoch in range(before + 1, self.family_epoch() + 1):
                    self.snapshot(epoch)
                if self.save_due:
                    self.save()
                if self.stop.requested() and not all(x.trainer.done for x in self.members):
                    self.save()
                    self.logger.close()
                    self.stop.forward()
                    raise RunInterrupted(
                        f"stopped by {self.stop.name} after {self.done_steps} of {self.total} steps of family "
                        f"{self.name}; state saved in {self.path}: rerun the same command to continue "
                        f"(hydra.run.dir={self.run_dir})")
        finally:
            for m in self.members:
                m.trainer.close()
        return self.finish()

    def recover(self, m: _Member, d: Diverged) -> None:
        """A member diverged: roll every member back to the last save with that member's gamma lowered
        (``guard.on_divergence=rollback``), or stop with a one-line :class:`DivergenceError`."""
        guard = self.top.guard
        last = load_run_state(self.path)
        record = {"type": "divergence", "task": m.name, "step": d.step, "epoch": d.epoch, "loss": d.loss,
                  "lr": d.lr, "reason": d.reason}
        if guard.on_divergence == "rollback" and self.rollbacks < guard.max_rollbacks:
            self.restore(last)
            self.rollbacks += 1
            m.gamma *= guard.lr_factor
            print(f"family member {m.name} diverged at its step {d.step}: {d.reason}; rolled back to the last save "
                  f"with its gamma x{guard.lr_factor:g} (rollback {self.rollbacks} of at most {guard.max_rollbacks})",
                  flush=True)
            self.logger.rewind(last["metrics_bytes"])
            self.logger.log({**record, "action": "rollback", "lr_factor": guard.lr_factor})
            self.save()
            return
        self.logger.log({**record, "action": "stop"})
        self.logger.close()
        raise DivergenceError(f"family member {m.name} diverged at its step {d.step} (epoch {d.epoch}): {d.reason}, "
                              f"loss {d.loss:.4g}, lr {d.lr:.4g}; the last good state is kept in {self.path}; lower "
                              "its net.gamma in its overrides, or add guard.on_divergence=rollback")

    # -- the end --

    def finish(self) -> dict:
        wall = self.wall_time()
        steps = read_metrics(self.run_dir / "metrics.jsonl")
        members: dict[str, Any] = {}
        for m in self.members:
            out = self.run_dir / MEMBERS_DIR / m.name
            out.mkdir(parents=True, exist_ok=True)
            atomic_write_text(out / "config.yaml", dump_config(config_dict(m.cfg)))
            record = RunRecord.of(m.run, m.trainer.history, wall_time_s=wall, rollbacks=self.rollbacks,
                                  run_dir=str(out))
            record.info.update(gamma=m.gamma, input_scale=m.scale, family=self.name)
            summary = record.summary()
            atomic_write_json(out / "summary.json", summary)
            lrs = [(r["step"], r["lr"]) for r in steps if r.get("type") == "step" and r.get("task") == m.name]
            if lrs:
                save_lr_schedule(out, lrs, f"{m.name} in family {self.name}: MLR-SNet LR (seed {m.run.seed})")
            members[m.name] = {k: v for k, v in summary.items() if k in (
                "task", "metric", "epochs", "steps", "initial_loss", "gamma", "input_scale", "final_train_loss",
                "lr_mean") or k.startswith(("final_", "best_"))}
        meta = {"config": self.plain, **self._family_meta(), **environment()}
        first = self.members[0]
        info = first.run.task.info
        path = self.run_dir / "mlrsnet.pt"
        with self.active(first):
            save_mlrsnet(path, self.net, task=self.name, num_classes=info.num_classes, loss_scale=first.scale,
                         initial_loss=first.run.l0, epochs=self.epochs, **meta)
        nets = [load_mlrsnet(self.run_dir / SNAPSHOT_DIR / f"mlrsnet_epoch{e:04d}.pt")[0] for e in self.bundle]
        bundle = self.run_dir / BUNDLE_FILE
        save_bundle(bundle, nets, self.bundle, task=self.name, num_classes=info.num_classes,
                    loss_scale=first.scale, initial_loss=first.run.l0, **meta)
        summary = {"status": "complete", "family": self.name, "members": members, "seed": self.top.seed,
                   "sampling": self.plan.family.sampling, "input_scale": self.plan.family.input_scale,
                   "epochs": self.epochs, "steps": self.done_steps, "wall_time_s": wall, "rollbacks": self.rollbacks,
                   "run_dir": str(self.run_dir), "checkpoint": str(path),
                   "bundle": {"path": str(bundle.resolve()), "epochs": self.bundle, "sha256": file_sha256(bundle)}}
        if self.top.copy_to_checkpoints:
            dest = Path(self.top.checkpoints_dir) / f"family_{self.name}_seed{self.top.seed}.pt"
            dest.parent.mkdir(parents=True, exist_ok=True)
            tmp = dest.with_suffix(".pt.tmp")
            shutil.copyfile(bundle, tmp)
            tmp.replace(dest)
            summary["checkpoint_copy"] = {"path": str(dest.resolve()), "sha256": file_sha256(dest)}
        self.logger.summary(summary)
        self.logger.close()
        return summary


def execute_family(plan: FamilyPlan, run_dir: str | Path, stop: StopSignals, config_yaml: str | None = None) -> dict:
    """Meta-train one MLR-SNet over the family of ``plan`` in ``run_dir`` (the module docstring); returns the family's
    summary. The run directory is locked while it runs; a signal saves every member and raises
    :class:`RunInterrupted` (exit code 75); the same call resumes it."""
    with open_run_dir(run_dir) as locked:
        if stop.signum is not None:
            raise RunInterrupted(f"stopped by {stop.name} before {locked} started; rerun the same command to continue")
        return _FamilyRun(plan, locked, stop, config_yaml).run()
