"""A benchmark that decides (after MLCommons AlgoPerf, Dahl et al. 2023): workloads with targets, two tuning
rulesets, time-to-result and performance profiles.

Command line (Hydra)::

    python -m mlrsnet.suite                                   # the quick suite, ruleset self, every default schedule
    python -m mlrsnet.suite suite=default ruleset=external trials=8 jobs=2
    python -m mlrsnet.suite schedules=[cosine,wsd,mlrsnet_frozen] seeds=[0,1,2,3,4]

Python::

    from mlrsnet.suite import suite
    out = suite(compose("suite", ["suite=quick"]), "runs/suite/mine")

Protocol:

- A *workload* (``conf/suite/<suite>.yaml``) is a task of the registry with its training settings, a step
  budget (``epochs``) and a *target* on the **meta split** (its metric: accuracy, perplexity, ...; how each target
  was set is in the file). The test split is reported and never used for a choice.
- Ruleset ``self``: no tuning; each schedule runs at its declared defaults. Ruleset ``external``: ``trials``
  quasirandom trials per schedule and workload, drawn by a scrambled Sobol sequence (``scipy.stats.qmc``) from the
  schedule's declared search space (:class:`mlrsnet.schedules.spec.Schedule`'s ``search``: ``lr`` multiplies its
  base LR; other dimensions are its parameters), each trained with ``tune_seed`` for the workload's budget and
  scored by its final meta metric; ``tuner=optuna`` draws them with Optuna's TPE instead (extra ``[tune]``). The
  chosen trial and whether it sits at an edge of the space (within 5% of a bound, in the unit cube) are recorded.
- The chosen configuration then trains once per seed of ``seeds``, the test and meta splits evaluated every epoch.
- Per workload and schedule: epochs, steps and seconds to the target (median over seeds; a seed that never reaches
  it counts as not reached, and the median is "not reached" when half of them do not), the final and best meta
  and test metrics. Across workloads: performance profiles of the median seconds to target (``profiles.png``,
  tau on a log axis) and the benchmark score, the normalised area under each profile up to ``tau_max``
  (:mod:`mlrsnet.engine.stats`). Every pairwise comparison (each schedule against MLR-SNet, meta-trained in place,
  when it runs, else against the first schedule) is a paired t-test over seeds with a 95% interval, per workload;
  a seed that *failed* (its final test metric worse than chance, the metric of a model that learned nothing, or
  not finite: :attr:`mlrsnet.tasks.base.TaskInfo.chance`) enters it at chance (:func:`mlrsnet.engine.stats.compare`),
  so a schedule that diverges on every seed loses instead of tying on the variance of its divergence.

Runs go through the runner (:func:`mlrsnet.engine.runner.execute`): each in its own locked, fingerprinted run
directory (``runs/<workload>/<schedule>/trial<k>`` and ``seed<k>``), saved every epoch, reused when finished; a
killed suite resumes where it stopped and reruns no finished trial. ``jobs`` > 1 runs them as separate processes
(joblib's loky backend, one torch thread each); on a cluster, ``launcher=slurm`` submits them as a job array
through submitit.

Outputs in ``out_dir``: ``results.csv`` (one row per seed run), ``trials.csv`` (every trial, its score, the chosen
one, edges), ``scores.md`` (per workload, the profiles' scores, the paired tests), ``profiles.png``, ``suite.json``.
"""

from __future__ import annotations

import dataclasses
import math
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlrsnet.engine.build import check_optimizer, usable_cpus
from mlrsnet.engine.config import ScheduleChoice, TrainConfig, parse_config, schedule_choice
from mlrsnet.engine.figures import plot_profiles
from mlrsnet.engine.fingerprint import config_dict, fingerprint
from mlrsnet.engine.log import csv_text, dump_config, environment
from mlrsnet.engine.parallel import run_jobs
from mlrsnet.engine.resume import StopSignals
from mlrsnet.engine.runner import execute, finished, read_record, stopped_between_runs
from mlrsnet.engine.stats import benchmark_score, compare, failed, performance_profiles
from mlrsnet.errors import ConfigError
from mlrsnet.io import atomic_write_json, atomic_write_text
from mlrsnet.rundir import exclusive
from mlrsnet.schedules.registry import get_schedule, parse_params, schedule_names
from mlrsnet.typed import parse, setting

__all__ = ["SuiteConfig", "Trial", "Workload", "plan_trials", "suite", "validate_suite"]

if TYPE_CHECKING:
    from mlrsnet.tasks.base import TaskInfo

EDGE = 0.05  # a chosen trial within this fraction of a bound of its unit-cube coordinate sits at an edge


@dataclass
class Workload:
    """One workload: a task of the registry, its overrides, its budget and its target on the meta split."""

    name: str = setting(help="the workload's name in the tables")
    task: str = setting(help="a task of conf/task/ (+task=NAME)")
    epochs: int = setting(help="the budget: training epochs", ge=1)
    target: float = setting(help="the target of the task's metric on the meta split (>= for accuracy, <= for a "
                            "loss-like metric such as perplexity)")
    overrides: list[str] = setting([], "config overrides of the workload (as on the command line)")
    note: str = setting("", "how the target was set")


@dataclass
class SuiteConfig:
    """``python -m mlrsnet.suite``: conf/suite.yaml + a suite file (conf/suite/NAME.yaml, ``suite=NAME``)."""

    suite_name: str = setting("quick", "the suite's name (set by the suite file)")
    workloads: list[Any] = setting([], "the workloads (set by the suite file, or given as a list)")
    schedules: list[str] = setting(["fixed", "multistep", "cosine", "sgdr", "wsd", "sgd_hd", "mlrsnet",
                                    "mlrsnet_frozen"], "the schedules (algorithms) compared: declared schedule names "
                                   "or the names of `variants`")
    variants: dict[str, Any] = setting({}, "named variants of a schedule, listed in `schedules` by their name: "
                                       "NAME: {schedule: DECLARED_NAME, params: {KEY: VALUE}}, e.g. two frozen "
                                       "bundles side by side: family: {schedule: mlrsnet_frozen, params: "
                                       "{checkpoint: path/to/bundle.pt}}")
    ruleset: str = setting("self", "self: each schedule at its defaults | external: `trials` quasirandom trials "
                           "from its search space, chosen on the meta split", choices=("self", "external"))
    trials: int = setting(8, "trials per schedule and workload (ruleset external)", ge=1)
    tuner: str = setting("qmc", "qmc: scrambled Sobol points | optuna: Optuna's TPE (extra [tune])",
                         choices=("qmc", "optuna"))
    seeds: list[int] = setting([0, 1, 2], "every chosen configuration trains once per seed")
    tune_seed: int = setting(0, "the seed of the trials")
    tau_max: float = setting(4.0, "the performance profiles and the benchmark score run up to this ratio", gt=1)
    jobs: int | None = setting(None, "runs at a time, as separate processes (one torch thread each when > 1); "
                               "null: the CPUs this process may use", ge=1)
    launcher: str = setting("local", "local: this machine | slurm: a job array through submitit (extra [slurm])",
                            choices=("local", "slurm"))
    only: list[str] | None = setting(None, "run only these workloads of the suite (their names); null: all")
    overrides: list[str] = setting([], "config overrides applied to every workload (e.g. device=cuda)")
    progress: bool = setting(False, "progress bars of the runs (jobs=1)")
    out_dir: str | None = setting(None, "null: Hydra's run directory")

    def check(self, prefix: str) -> None:
        if not self.workloads:
            raise ConfigError("the suite has no workloads; choose a suite: suite=quick")
        if not self.schedules or len(set(self.schedules)) != len(self.schedules):
            raise ConfigError(f"schedules must be a non-empty list of distinct names, got {self.schedules}")
        for label, v in self.variants.items():
            if not isinstance(v, dict) or set(v) - {"schedule", "params"} or "schedule" not in v \
                    or not isinstance(v.get("params", {}), dict):
                raise ConfigError(f"variants.{label} must be {{schedule: NAME, params: {{KEY: VALUE}}}}, got {v!r}")
            if label in schedule_names():
                raise ConfigError(f"variants.{label}: {label} is a declared schedule; give the variant another name")
            parse_params(str(v["schedule"]), v.get("params") or {}, f"variants.{label}.params.")
        for name in self.schedules:
            get_schedule(self.base(name))
        if not self.seeds or len(set(self.seeds)) != len(self.seeds):
            raise ConfigError(f"seeds must be a non-empty list of distinct integers, got {self.seeds}")

    def base(self, name: str) -> str:
        """The declared schedule that ``name`` (a schedule or a variant) runs."""
        return str(self.variants[name]["schedule"]) if name in self.variants else name

    def fixed_params(self, name: str) -> dict:
        """The parameters variant ``name`` sets (none for a declared schedule); trials draw the others."""
        return dict(self.variants[name].get("params") or {}) if name in self.variants else {}


@dataclass
class Trial:
    """One configuration of a schedule: its LR multiplier and parameters, and its point in the unit cube."""

    index: int
    lr_multiplier: float
    params: dict
    point: dict


def _register() -> None:
    from hydra.core.config_store import ConfigStore

    from mlrsnet.typed import defaults

    node = {k: v for k, v in defaults(SuiteConfig).items() if k not in ("suite_name", "workloads")}
    ConfigStore.instance().store(group="base", name="suite", node=node, package="_global_")


_register()


def validate_suite(cfg: Any) -> tuple[SuiteConfig, list[Workload], dict[str, TrainConfig]]:
    """The typed suite config, its workloads, and each workload's typed training config; every error is one
    line."""
    from omegaconf import DictConfig, OmegaConf

    from mlrsnet.engine.cli import compose

    if isinstance(cfg, DictConfig):
        cfg = OmegaConf.to_container(cfg, resolve=True)
    typed = parse(SuiteConfig, {k: v for k, v in dict(cfg).items() if k != "hydra"})
    workloads = [parse(Workload, w, f"workloads[{i}].") for i, w in enumerate(typed.workloads)]
    names = [w.name for w in workloads]
    if len(set(names)) != len(names):
        raise ConfigError(f"the suite names a workload twice: {names}")
    if typed.only is not None:
        unknown = [n for n in typed.only if n not in names]
        if unknown or not typed.only:
            raise ConfigError(f"only={typed.only}: the {typed.suite_name} suite's workloads are {names}; name some "
                              "of them")
        workloads = [w for w in workloads if w.name in typed.only]
    configs = {}
    for w in workloads:
        try:
            composed = compose("train", [f"+task={w.task}", f"epochs={w.epochs}", *w.overrides, *typed.overrides])
        except Exception as e:  # Hydra's own errors about a workload's task or overrides
            raise ConfigError(f"workload {w.name}: cannot compose +task={w.task} with {w.overrides} "
                              f"({str(e).splitlines()[0]}); check conf/task/ and the overrides") from None
        try:
            configs[w.name] = parse_config(composed, "train")
        except ConfigError as e:
            raise ConfigError(f"workload {w.name}: {e}") from None
        for name in typed.schedules:
            check_optimizer(configs[w.name], _choice(configs[w.name], typed.base(name), typed.fixed_params(name)))
    if typed.ruleset == "external":
        for name in typed.schedules:
            if not get_schedule(typed.base(name)).search:
                raise ConfigError(f"schedule {name} declares an empty search space; ruleset=external needs one")
    return typed, workloads, configs


def _value(u: float, low: float, high: float, log: bool) -> float:
    return math.exp(math.log(low) + u * (math.log(high) - math.log(low))) if log else low + u * (high - low)


def plan_trials(schedule: str, cfg: SuiteConfig) -> list[Trial]:
    """The trials of ``schedule``: its defaults (ruleset self), or ``cfg.trials`` points of a scrambled Sobol
    sequence seeded by ``tune_seed`` mapped onto its search space (ruleset external, tuner qmc)."""
    if cfg.ruleset == "self":
        return [Trial(0, 1.0, {}, {})]
    from scipy.stats import qmc

    space = get_schedule(cfg.base(schedule)).search
    dims = sorted(space)
    sampler = qmc.Sobol(d=len(dims), scramble=True, seed=cfg.tune_seed)
    m = math.ceil(math.log2(max(1, cfg.trials)))
    points = sampler.random_base2(m)[: cfg.trials] if 2**m == cfg.trials else sampler.random(cfg.trials)
    trials = []
    for k, row in enumerate(points):
        values = {d: _value(float(u), space[d].low, space[d].high, space[d].log) for d, u in zip(dims, row,
                                                                                                strict=True)}
        lr = values.pop("lr", 1.0)
        trials.append(Trial(k, lr, values, {d: float(u) for d, u in zip(dims, row, strict=True)}))
    return trials


def _optuna_trials(schedule: str, cfg: SuiteConfig, score: Any) -> list[tuple[Trial, float | None]]:
    """Optuna's TPE over ``schedule``'s search space, ``cfg.trials`` trials, each scored by ``score(trial)``
    (the final meta metric, or None when the run diverged), maximised or minimised as the metric says."""
    try:
        import optuna
    except ImportError:
        raise ConfigError("tuner=optuna needs the [tune] extra (optuna is not installed); pip install -e "
                          "\".[tune]\", or use tuner=qmc") from None
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    space = get_schedule(cfg.base(schedule)).search
    study = None
    out = []
    for k in range(cfg.trials):
        if study is None:
            study = optuna.create_study(sampler=optuna.samplers.TPESampler(seed=cfg.tune_seed), direction="maximize")
        asked = study.ask()
        values = {d: asked.suggest_float(d, r.low, r.high, log=r.log) for d, r in sorted(space.items())}
        point = {d: (math.log(values[d] / r.low) / math.log(r.high / r.low)) if r.log
                 else (values[d] - r.low) / (r.high - r.low) for d, r in space.items()}
        lr = values.pop("lr", 1.0)
        trial = Trial(k, lr, values, point)
        value, sign = score(trial)
        study.tell(asked, -math.inf if value is None else sign * value)
        out.append((trial, value))
    return out


@dataclass
class _Job:
    """One run of the suite, as a separate process takes it."""

    cfg: TrainConfig
    schedule: str
    params: dict
    seed: int
    lr_multiplier: float
    run_dir: str
    eval_splits: tuple[str, ...]
    fingerprint: str
    extra: dict
    label: str  # the schedule's name in the tables: ``schedule`` or a variant of it


def _job_fingerprint(cfg: TrainConfig, schedule: str, params: dict, seed: int, lr_multiplier: float,
                     eval_splits: tuple[str, ...]) -> str:
    choice = schedule_choice(cfg, schedule)
    merged = {**dataclasses.asdict(choice.params), **params}
    return fingerprint(cfg, drop=frozenset({"schedule", "seed"}), schedule=schedule, params=merged,
                       optimizer=choice.optimizer, seed=seed, lr_multiplier=lr_multiplier,
                       eval_splits=list(eval_splits))


def _choice(cfg: TrainConfig, schedule: str, params: dict) -> ScheduleChoice:
    """Schedule ``schedule`` as ``cfg`` sets it, with ``params`` (a variant's, a trial's) over its parameters."""
    choice = schedule_choice(cfg, schedule)
    return dataclasses.replace(choice, params=parse_params(schedule, {**dataclasses.asdict(choice.params), **params}))


def _job(typed: SuiteConfig, cfg: TrainConfig, workload: str, name: str, trial: Trial, seed: int,
         splits: tuple[str, ...], run_dir: Path) -> _Job:
    """The run of schedule or variant ``name`` with ``trial`` and ``seed`` on a workload: a variant runs its
    declared schedule with its parameters under the trial's, in its own directory, and records its name."""
    schedule, params = typed.base(name), {**typed.fixed_params(name), **trial.params}
    fp = _job_fingerprint(cfg, schedule, params, seed, trial.lr_multiplier, splits)
    extra = {"workload": workload, "trial": trial.index, **({"variant": name} if name != schedule else {})}
    return _Job(cfg, schedule, params, seed, trial.lr_multiplier, str(run_dir), splits, fp, extra, name)


def _run(job: _Job) -> dict:
    """Train (or reuse) one run; returns its summary. In a worker process the run holds its own signals."""
    done = finished(job.run_dir, job.fingerprint)
    if done is not None:
        return done.summary()
    typed = _choice(job.cfg, job.schedule, job.params)
    with StopSignals() as stop:
        record = execute(job.cfg, job.run_dir, stop, schedule=typed, seed=job.seed, lr_multiplier=job.lr_multiplier,
                         eval_splits=job.eval_splits, on_divergence="record", fingerprint=job.fingerprint,
                         plot_lr=False, extra=job.extra)
        stopped_between_runs(stop, job.run_dir)
    return record.summary()


def _history(run_dir: str) -> list[dict]:
    record = read_record(run_dir)
    return [] if record is None else record.history


def _reach(history: list[dict], key: str, target: float, higher: bool) -> tuple[float, float, float]:
    """(epochs, steps, seconds) to ``target`` of ``history[key]``; inf when never reached."""
    seconds = 0.0
    for h in history:
        seconds += h["epoch_time"]
        if key in h and ((h[key] >= target) if higher else (h[key] <= target)):
            return float(h["epoch"]), float(h["step"]), seconds
    return math.inf, math.inf, math.inf


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else math.nan


def _edge(trial: Trial) -> bool:
    return any(u < EDGE or u > 1 - EDGE for u in trial.point.values())


def suite(cfg: Any, out_dir: str | Path) -> dict:
    """Run the suite of the module docstring; write its outputs to ``out_dir`` and return ``{"table", "files",
    "scores", "rows"}``."""
    typed, workloads, configs = validate_suite(cfg)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    jobs = typed.jobs or usable_cpus()
    if jobs > 1:  # one torch thread per process: the runs share the cores
        configs = {name: dataclasses.replace(c, threads=1, progress=False) for name, c in configs.items()}
    else:
        configs = {name: dataclasses.replace(c, progress=typed.progress) for name, c in configs.items()}
    with exclusive(out_dir / ".suite.lock"):
        atomic_write_text(out_dir / "config.yaml", dump_config(config_dict(typed)))
        atomic_write_json(out_dir / "environment.json", environment())
    trial_rows, chosen = _tune(typed, workloads, configs, out_dir, jobs)
    seed_jobs = []
    for w in workloads:
        for name in typed.schedules:
            trial = chosen[w.name, name]
            for seed in typed.seeds:
                seed_jobs.append(_job(typed, configs[w.name], w.name, name, trial, seed, ("test", "meta"),
                                      out_dir / "runs" / w.name / name / f"seed{seed}"))
    summaries = run_jobs(_run, seed_jobs, jobs, typed.launcher, out_dir / "slurm")
    with exclusive(out_dir / ".suite.lock"):
        return _outputs(typed, workloads, seed_jobs, summaries, trial_rows, chosen, out_dir,
                        {w.name: _info(configs[w.name]).chance for w in workloads})


def _tune(typed: SuiteConfig, workloads: list[Workload], configs: dict[str, TrainConfig], out_dir: Path,
          jobs: int) -> tuple[list[dict], dict[tuple[str, str], Trial]]:
    """Every trial of every (workload, schedule), and the chosen one of each (the best final meta metric; ties:
    the LR multiplier closest to 1, then the lower index; every trial diverged: the first)."""
    splits = ("meta",)

    def job(w: Workload, name: str, trial: Trial) -> _Job:
        return _job(typed, configs[w.name], w.name, name, trial, typed.tune_seed, splits,
                    out_dir / "runs" / w.name / name / f"trial{trial.index}")

    scored: dict[tuple[str, str], list[tuple[Trial, float | None]]] = {}
    if typed.ruleset == "external" and typed.tuner == "optuna":
        for w in workloads:
            higher = _info(configs[w.name]).higher_is_better
            for name in typed.schedules:
                def score(trial: Trial, w: Workload = w, name: str = name,
                          sign: float = 1.0 if higher else -1.0) -> tuple[float | None, float]:
                    s = _run(job(w, name, trial))
                    return s.get(f"final_meta_{s['metric']}") if s["status"] == "complete" else None, sign

                scored[w.name, name] = _optuna_trials(name, typed, score)
    elif typed.ruleset == "external":
        planned = [(w, name, t) for w in workloads for name in typed.schedules for t in plan_trials(name, typed)]
        summaries = run_jobs(_run, [job(*p) for p in planned], jobs, typed.launcher, out_dir / "slurm")
        for (w, name, trial), s in zip(planned, summaries, strict=True):
            value = s.get(f"final_meta_{s['metric']}") if s["status"] == "complete" else None
            scored.setdefault((w.name, name), []).append((trial, value))
    else:
        scored = {(w.name, name): [(plan_trials(name, typed)[0], None)] for w in workloads for name in typed.schedules}
    rows, chosen = [], {}
    for (wname, name), results in scored.items():
        sign = 1.0 if _info(configs[wname]).higher_is_better else -1.0
        finite = [(t, v) for t, v in results if v is not None and math.isfinite(v)]
        best = max(finite, key=lambda tv: (sign * tv[1], -abs(math.log(tv[0].lr_multiplier)), -tv[0].index))[0] \
            if finite else results[0][0]
        chosen[wname, name] = best
        for t, v in results:
            rows.append({"workload": wname, "schedule": name, "trial": t.index, "lr_multiplier": t.lr_multiplier,
                         "params": ";".join(f"{k}={v:.4g}" for k, v in sorted(t.params.items())),
                         "meta_score": v, "chosen": t is best, "edge": t is best and _edge(t)})
    return rows, chosen


def _info(cfg: TrainConfig) -> TaskInfo:
    """The task's :class:`TaskInfo` (its metric's direction and chance level), built once per task and overrides."""
    from mlrsnet.tasks import build_task

    key = fingerprint(config_dict(cfg.task))
    if key not in _INFO:
        _INFO[key] = build_task(cfg.task, 0, "cpu").info
    return _INFO[key]


_INFO: dict[str, TaskInfo] = {}


def _outputs(typed: SuiteConfig, workloads: list[Workload], seed_jobs: list[_Job], summaries: list[dict],
             trial_rows: list[dict], chosen: dict[tuple[str, str], Trial], out_dir: Path,
             chance: dict[str, float | None]) -> dict:
    rows = []
    for job, s in zip(seed_jobs, summaries, strict=True):
        w = next(x for x in workloads if x.name == job.extra["workload"])
        metric = s["metric"]
        final_test = s.get(f"final_test_{metric}")
        epochs, steps, seconds = _reach(_history(job.run_dir), f"meta_{metric}", w.target, s["higher_is_better"]) \
            if s["status"] == "complete" else (math.inf,) * 3
        rows.append({"workload": w.name, "schedule": job.label, "seed": job.seed, "status": s["status"],
                     "lr_multiplier": job.lr_multiplier, "metric": metric, "target": w.target,
                     "epochs_to_target": epochs, "steps_to_target": steps, "seconds_to_target": seconds,
                     "final_meta": s.get(f"final_meta_{metric}"), "best_meta": s.get(f"best_meta_{metric}"),
                     "final_test": final_test, "best_test": s.get(f"best_test_{metric}"),
                     "higher_is_better": s["higher_is_better"], "chance": chance[w.name],
                     "failed": failed(final_test, chance[w.name], s["higher_is_better"]),
                     "wall_time_s": s["wall_time_s"]})
    files = {name: out_dir / name for name in ("results.csv", "trials.csv", "scores.md", "suite.json")}
    atomic_write_text(files["results.csv"], csv_text(rows, list(rows[0])))
    atomic_write_text(files["trials.csv"], csv_text(trial_rows, ("workload", "schedule", "trial", "lr_multiplier",
                                                                 "params", "meta_score", "chosen", "edge")))
    times: dict[str, dict[str, float]] = {name: {} for name in typed.schedules}
    step_times: dict[str, dict[str, float]] = {name: {} for name in typed.schedules}
    per_workload = []
    for w in workloads:
        for name in typed.schedules:
            mine = [r for r in rows if r["workload"] == w.name and r["schedule"] == name]
            secs = sorted(r["seconds_to_target"] for r in mine)
            median_s = _median(secs)
            times[name][w.name] = median_s
            step_times[name][w.name] = _median(sorted(r["steps_to_target"] for r in mine))
            per_workload.append({
                "workload": w.name, "schedule": name, "n": len(mine), "lr_multiplier": mine[0]["lr_multiplier"],
                "edge": any(t["edge"] for t in trial_rows if t["workload"] == w.name and t["schedule"] == name),
                "reached": sum(math.isfinite(x) for x in secs), "failed": sum(r["failed"] for r in mine),
                "median_epochs": _median(
                    sorted(r["epochs_to_target"] for r in mine)), "median_steps": _median(
                    sorted(r["steps_to_target"] for r in mine)), "median_seconds": median_s,
                "final_meta": _mean([r["final_meta"] for r in mine]),
                "final_test": _mean([r["final_test"] for r in mine]),
                "best_test": _mean([r["best_test"] for r in mine])})
    taus = [1.0 + (typed.tau_max - 1.0) * i / 200 for i in range(201)]
    rho = performance_profiles(times, taus)
    scores = {name: benchmark_score(rho[name], taus) for name in typed.schedules}
    rho_steps = performance_profiles(step_times, taus)
    step_scores = {name: benchmark_score(rho_steps[name], taus) for name in typed.schedules}
    reference = "mlrsnet" if "mlrsnet" in typed.schedules else typed.schedules[0]
    tests = []
    for w in workloads:
        ref = {r["seed"]: r for r in rows if r["workload"] == w.name and r["schedule"] == reference}
        for name in typed.schedules:
            if name == reference:
                continue
            mine = {r["seed"]: r for r in rows if r["workload"] == w.name and r["schedule"] == name}
            seeds = [s for s in typed.seeds if s in mine and s in ref]
            higher = bool(next(iter(ref.values()))["higher_is_better"]) if ref else True
            cmp = compare([ref[s]["final_test"] for s in seeds], [mine[s]["final_test"] for s in seeds], higher,
                          chance[w.name])
            tests.append({"workload": w.name, "a": reference, "b": name, **cmp})
    files["profiles.png"] = plot_profiles({"seconds to target": rho, "steps to target": rho_steps}, taus,
                                          out_dir / "profiles.png",
                                          f"suite {typed.suite_name}, ruleset {typed.ruleset}: performance profiles"
                                          f"\n{_scope(typed, workloads)}")
    table = _table(typed, workloads, per_workload, scores, step_scores, tests, reference, chance)
    atomic_write_text(files["scores.md"], table)
    atomic_write_json(files["suite.json"], {"suite": typed.suite_name, "ruleset": typed.ruleset, "scores": scores,
                                            "step_scores": step_scores,
                                            "per_workload": per_workload, "paired": tests, "tau_max": typed.tau_max,
                                            "workloads": [dataclasses.asdict(w) for w in workloads]})
    return {"table": table, "files": files, "scores": scores, "step_scores": step_scores, "rows": rows,
            "per_workload": per_workload, "paired": tests}


def _mean(values: list[Any]) -> float:
    finite = [v for v in values if isinstance(v, int | float) and math.isfinite(v)]
    return statistics.fmean(finite) if finite else math.nan


def _num(value: float, digits: int = 4) -> str:
    return "not reached" if value == math.inf else ("—" if math.isnan(value) else f"{value:.{digits}g}")


def _scope(typed: SuiteConfig, workloads: list[Workload]) -> str:
    """Which workloads a suite directory's results cover (all, or those of ``only``) and the overrides that
    every workload ran with: the figure's second title line and the score table's first line."""
    count = f"{len(workloads)} workload{'s' if len(workloads) != 1 else ''}"
    names = ", ".join(w.name for w in workloads)
    scope = f"{count}: {names}" if typed.only is None else f"{count} (only={','.join(typed.only)})"
    return f"{scope}; overrides: {' '.join(typed.overrides)}" if typed.overrides else scope


def _table(typed: SuiteConfig, workloads: list[Workload], per_workload: list[dict], scores: dict[str, float],
           step_scores: dict[str, float], tests: list[dict], reference: str,
           chance: dict[str, float | None]) -> str:
    lines = [f"# Suite {typed.suite_name}, ruleset {typed.ruleset}" + (f" ({typed.trials} trials, {typed.tuner})"
                                                               if typed.ruleset == "external" else ""),
             "", f"{_scope(typed, workloads)}.",
             "", f"Seeds {typed.seeds}. Targets on the meta split; the test split is reported, never chosen on.",
             "", "## Benchmark score (the normalised area under the performance profile of the median time to "
             f"target, tau from 1 to {typed.tau_max:g}; AlgoPerf's is in seconds, which count a schedule's own cost, "
             "such as MLR-SNet's meta steps; in steps they do not)", "",
             "| rank | schedule | score (seconds) | score (steps) |", "|---|---|---|---|"]
    for rank, (name, score) in enumerate(sorted(scores.items(), key=lambda kv: -kv[1]), start=1):
        lines.append(f"| {rank} | {name} | {score:.3f} | {step_scores[name]:.3f} |")
    for w in workloads:
        lines += ["", f"## {w.name} (task {w.task}, {w.epochs} epochs, target {w.target:g} on the meta split)", "",
                  "| schedule | n | LR × | reached | failed | epochs to target | steps | seconds | final meta | "
                  "final test | best test |", "|---|---|---|---|---|---|---|---|---|---|---|"]
        for r in (x for x in per_workload if x["workload"] == w.name):
            edge = " (edge)" if r["edge"] else ""
            lines.append(f"| {r['schedule']} | {r['n']} | {r['lr_multiplier']:.3g}{edge} | {r['reached']}/{r['n']} | "
                         f"{r['failed']}/{r['n']} | "
                         f"{_num(r['median_epochs'])} | {_num(r['median_steps'])} | {_num(r['median_seconds'], 3)} | "
                         f"{_num(r['final_meta'])} | {_num(r['final_test'])} | {_num(r['best_test'])} |")
        mine = [t for t in tests if t["workload"] == w.name]
        if mine:
            lines += ["", f"Paired over seeds, final test metric, {reference} minus each (95% interval, p; win / "
                      "tie / loss for " + reference + " at p < 0.05; a failed seed, worse than chance or not finite, "
                      "counts at chance, " + ("none" if chance[w.name] is None else _num(chance[w.name])) + "):", "",
                      "| against | n | mean difference | 95% interval | p | verdict |", "|---|---|---|---|---|---|"]
            for t in mine:
                lines.append(f"| {t['b']} | {t['n']} | {t['mean_diff']:+.4f} | [{t['ci_low']:+.4f}, "
                             f"{t['ci_high']:+.4f}] | {_num(t['p'], 3)} | {t['verdict']} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    from mlrsnet.engine.cli import run_hydra, table_command

    run_hydra(table_command(suite), config_name="suite", group="", command="suite", schema=SuiteConfig,
              validate=lambda cfg: validate_suite(cfg))


if __name__ == "__main__":
    main()
