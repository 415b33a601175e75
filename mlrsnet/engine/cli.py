"""Shared plumbing of the Hydra entry points: config-group checks, validation before any run directory
is made, and one-line errors."""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Any

from mlrsnet.engine import config
from mlrsnet.engine.cluster import submission_failure, unfinished_job, watch_slurm_jobs
from mlrsnet.engine.config import CONFIGS
from mlrsnet.engine.fingerprint import MACHINE, NEUTRAL
from mlrsnet.errors import MLRSNetError, RunInterrupted
from mlrsnet.rundir import register_resolvers, write_error
from mlrsnet.schedules import registry as schedule_registry
from mlrsnet.tasks import registry as task_registry
from mlrsnet.typed import closest_key

CONFIG_PATH = "pkg://mlrsnet.conf"
# The config group each command composes its task from; the other is a mistake (train +query=...).
GROUPS = {"train": "task", "bench": "task", "transfer": "query"}


def available_configs(group: str) -> list[str]:
    """Names of the configs in a config group (``conf/<group>/*.yaml``), as shipped in the package."""
    root = resources.files("mlrsnet.conf") / group
    if not root.is_dir():
        return []
    return sorted(p.name[:-5] for p in root.iterdir() if p.name.endswith(".yaml"))


def _register_choices() -> None:
    from omegaconf import OmegaConf

    if not OmegaConf.has_resolver("mlrsnet_choices"):  # the --help text lists a group's configs
        OmegaConf.register_new_resolver("mlrsnet_choices", lambda group: ", ".join(available_configs(group)))
    if not OmegaConf.has_resolver("mlrsnet_neutral_keys"):  # keys that name no sweep job directory
        OmegaConf.register_new_resolver("mlrsnet_neutral_keys", lambda: sorted(NEUTRAL | MACHINE))


# At import, also in a submitit worker that unpickles a job: its config names ${run_id:}. The defaults Hydra
# composes from are the typed configs' own (ConfigStore: base/<command>, schedule/<name>, task_schema/<dataset>).
register_resolvers()
_register_choices()
config.register_command_configs()
schedule_registry.register_schedule_configs()
task_registry.register_task_configs()


def fail(message: str, code: int = 2) -> None:
    print(f"error: {message}", file=sys.stderr)
    raise SystemExit(code)


def check_group_arg(argv: list[str], group: str, command: str) -> list[str]:
    """Validate ``+group=name`` on the command line before Hydra composes the config.

    Accepts ``group=name`` as a synonym of ``+group=name`` (the group is deliberately not in the
    defaults list, so Hydra itself would reject it). Comma-separated sweeps are checked item by item.
    """
    available = available_configs(group)
    listing = ", ".join(available)
    out, found = [], False
    for arg in argv:
        key, sep, value = arg.partition("=")
        other = key.lstrip("+")
        if sep and other != group and other in set(GROUPS.values()):
            owner = next(c for c, g in GROUPS.items() if g == other)
            fail(f"{command} takes +{group}=NAME, not +{other}= (that is python -m mlrsnet.{owner}); drop "
                 f"{arg}" + (f" and use +{group}={value}" if value in available else ""))
        if sep and other == group:
            found = True
            arg = f"+{group}={value}"
            if "(" not in value:
                unknown = [v for v in value.split(",") if v not in available]
                if unknown:
                    fail(f"unknown {group} {unknown[0]!r}; use +{group}=NAME with NAME one of: {listing}")
        out.append(arg)
    if not found and not any(a in ("-h", "--help", "--cfg", "-c", "--info", "-i") for a in argv):
        fail(f"no {group} given; run `python -m mlrsnet.{command} +{group}=NAME` with NAME one of: {listing}")
    return out


def _task_overrides_for_sweep(argv: list[str]) -> list[str]:
    """A sweep's ``task.KEY=VALUE`` as ``++task.KEY=VALUE``: Hydra composes a sweep's config before it knows the
    task (a sweep over ``+task=a,b`` is expanded per job), where ``task`` has no keys yet; each job's task file then
    sets the key and the override wins. A key the task does not have is still refused, per job, by the task's
    typed config (:func:`mlrsnet.tasks.registry.parse_task`)."""
    return [f"++{a}" if a.startswith("task.") and "=" in a else a for a in argv]


def validate_sweep(argv: list[str], config_name: str, validate: Callable[[Any], Any]) -> None:
    """Compose and validate every job of a multirun sweep before the first one starts: a bad value in any job
    is the one-line error of :func:`fail`, naming the job, and nothing runs."""
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException

    overrides = [a for a in argv if "=" in a and not a.startswith("-") and not a.lstrip("+~").startswith("hydra")]
    try:
        batches = BasicSweeper.split_arguments(OverridesParser.create().parse_overrides(overrides), None)
    except HydraException:
        return  # Hydra itself reports an override it cannot parse, in its own words
    jobs = [job for batch in batches for job in batch]
    for num, job in enumerate(jobs):
        try:
            validate(_task_config(compose(config_name, job)))
        except MLRSNetError as e:
            fail(f"sweep job #{num} ({' '.join(job)}): {e}; nothing was run", e.exit_code)
        except HydraException:
            return  # left to Hydra's own composition of the job, which names the problem


# The validation of the command being run (run_hydra sets it), for ValidateBeforeRun.
_validator: Callable[[dict], None] | None = None


def _task_config(cfg: Any) -> dict:
    """The resolved task config (without the ``hydra`` node) of a config Hydra composed."""
    from omegaconf import Container, OmegaConf

    return {k: OmegaConf.to_container(v, resolve=True) if isinstance(v, Container) else v
            for k, v in ((k, cfg[k]) for k in cfg if k != "hydra")}


try:
    from hydra.experimental.callback import Callback as _Callback
except ImportError:  # pragma: no cover - hydra-core is a dependency
    _Callback = object  # type: ignore[assignment,misc]


class ValidateBeforeRun(_Callback):  # type: ignore[misc,valid-type]
    """Hydra callback (``hydra.callbacks.validate`` in conf/train.yaml, transfer.yaml): validate the composed
    config once it is composed, before Hydra creates the run directory, so that a rejected command leaves
    no empty directory behind. Hydra turns exceptions of callbacks into warnings, so a bad config ends
    the process here, with the one line of :func:`fail`."""

    def on_run_start(self, config: Any, **kwargs: Any) -> None:
        if _validator is not None:
            try:
                _validator(_task_config(config))
            except MLRSNetError as e:
                fail(str(e), e.exit_code)


def _remove_if_unused(run_dir: Path) -> None:
    """Remove a run directory this command created and left without a result: only Hydra's ``.hydra/``
    and the lock file in it (a run rejected after it started: a missing dataset, a meta set too large)."""
    import shutil

    from mlrsnet.rundir import LOCK_FILE

    try:
        if not run_dir.is_dir() or {p.name for p in run_dir.iterdir()} - {".hydra", LOCK_FILE}:
            return
        shutil.rmtree(run_dir / ".hydra", ignore_errors=True)
        (run_dir / LOCK_FILE).unlink(missing_ok=True)
        run_dir.rmdir()
    except OSError:
        pass


def table_command(study: Callable[[Any, Path], dict]) -> Callable[[Any], None]:
    """The Hydra task function of a command whose ``study(cfg, out_dir)`` writes a results table and its
    files into ``out_dir`` (``cfg.out_dir``, or null: Hydra's run directory): it prints the table and the
    files (``mlrsnet.bench``, ``mlrsnet.ensemble``)."""

    def task_function(cfg: Any) -> None:
        from hydra.core.hydra_config import HydraConfig

        out_dir = Path(cfg.get("out_dir") or HydraConfig.get().runtime.output_dir)
        results = study(cfg, out_dir)
        print(results["table"])
        print(f"outputs in {out_dir}: " + ", ".join(results["files"]))

    return task_function


def run_hydra(task_function: Callable[[Any], Any], config_name: str, group: str, command: str,
              validate: Callable[[dict], None] | None = None, schema: type | None = None) -> None:
    """Run ``task_function`` under ``hydra.main``. User errors print one line (``error: ...``) and exit
    with the error's code (2 unless the error says otherwise): an :class:`MLRSNetError` from the task
    (in a multirun, per failed job, after Hydra's line naming the job) and Hydra's own errors about the
    command line: an unknown key or config-group option, an unparsable override, an output directory
    that cannot be created. ``validate`` (the command's config validation) runs as soon as the config is
    composed, before the run directory exists; ``schema``, the command's typed config (default: the one
    ``CONFIGS`` names for it), suggests the key a misspelt one meant. A disk fault is a one-line
    :class:`~mlrsnet.errors.WriteError`, a Ctrl-C one line saying what was saved. Bugs keep their
    traceback."""
    import hydra

    global _validator
    _validator = validate
    if group:  # the config group the command takes its task from (+task=NAME, +query=NAME)
        sys.argv = [sys.argv[0], *check_group_arg(sys.argv[1:], group, command)]
    if "-m" in sys.argv or "--multirun" in sys.argv:
        watch_slurm_jobs()  # a sweep may go to SLURM: read job states from squeue where sacct fails
        sys.argv = [sys.argv[0], *_task_overrides_for_sweep(sys.argv[1:])]
        if validate is not None:
            validate_sweep(sys.argv[1:], config_name, validate)
    # Hydra prints its own errors over several lines unless HYDRA_FULL_ERROR is set, in which case it
    # raises them; they are raised here and turned into one line. A user's HYDRA_FULL_ERROR=1 wins.
    previous_full_error = os.environ.get("HYDRA_FULL_ERROR")
    keep_hydra_errors = previous_full_error == "1"
    os.environ["HYDRA_FULL_ERROR"] = "1"

    def guarded(cfg: Any) -> Any:
        from hydra.core.hydra_config import HydraConfig
        from hydra.types import RunMode

        try:
            try:
                return task_function(cfg)
            except OSError as e:
                raise write_error(e) or e from None
        except MLRSNetError as e:
            hydra_cfg = HydraConfig.get()
            if not any(o.startswith(("hydra.run.dir=", "hydra.sweep.dir=")) for o in hydra_cfg.overrides.hydra):
                _remove_if_unused(Path(hydra_cfg.runtime.output_dir))
            # In a multirun the launcher records a failed job and goes on; a stop signal must end the
            # process instead (and leave no result, so that a cluster requeue runs the job again).
            if hydra_cfg.mode == RunMode.MULTIRUN and not isinstance(e, RunInterrupted):
                raise
            fail(str(e), e.exit_code)
        except KeyboardInterrupt:
            fail(interrupted_message(Path(HydraConfig.get().runtime.output_dir), command), 130)
        except Exception as e:
            e._mlrsnet_from_task = True  # type: ignore[attr-defined]
            raise

    guarded.__name__ = command
    guarded.__module__ = task_function.__module__
    try:
        hydra.main(version_base="1.3", config_path=CONFIG_PATH, config_name=config_name)(guarded)()
    except MLRSNetError as e:
        fail(str(e), e.exit_code)
    except Exception as e:
        own = keep_hydra_errors or hasattr(e, "_mlrsnet_from_task")
        message = None if own else hydra_error(e, group, command, schema)
        if message is None:
            raise
        fail(message)
    finally:
        # Called from Python (a notebook, a test), the switch must not leak into later processes.
        if previous_full_error is None:
            os.environ.pop("HYDRA_FULL_ERROR", None)
        else:
            os.environ["HYDRA_FULL_ERROR"] = previous_full_error


def interrupted_message(run_dir: Path, command: str) -> str:
    """The one line a Ctrl-C leaves (a second one, or one before training started: the first one in the
    training loop stops after the current step and saves, like SIGTERM)."""
    state = run_dir / "run_state.pt"
    if state.is_file():
        return (f"interrupted (Ctrl-C); the state of the last completed save is in {state}: rerun the same "
                f"command with hydra.run.dir={run_dir} to resume from it")
    if command == "bench":
        return ("interrupted (Ctrl-C); finished (schedule, seed) runs are kept in their directories: rerun the "
                "same command with out_dir=<the bench directory> to reuse them and train the rest")
    return f"interrupted (Ctrl-C) before anything was saved; rerun the command to start again (outputs in {run_dir})"


def hydra_error(e: Exception, group: str, command: str, schema: type | None = None) -> str | None:
    """A one-line message, naming the problem and the fix, for an error Hydra raises about the command
    line; None for anything else."""
    from hydra.errors import (
        ConfigCompositionException,
        HydraException,
        MissingConfigException,
        OverrideParseException,
    )

    first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    cause = str(e.__cause__).strip().splitlines()[0] if e.__cause__ is not None and str(e.__cause__).strip() else ""
    listing = f"python -m mlrsnet.{command}{f' +{group}=NAME' if group else ''} --cfg job"
    missing = re.search(r"Could not (?:find|load) '([^']+)'", str(e))
    if isinstance(e, MissingConfigException) and "submitit" in (missing.group(1) if missing else
                                                                 str(e.missing_cfg_file or "")):
        # conf/hydra/launcher/{local,slurm}.yaml extend the plugin's configs, absent without the plugin.
        return ("hydra/launcher=local and hydra/launcher=slurm need the hydra-submitit-launcher plugin: "
                "pip install 'mlrsnet[slurm]' (or pip install hydra-submitit-launcher), or drop hydra/launcher "
                "to run the sweep's jobs one after another in this process")
    if isinstance(e, MissingConfigException):
        where = e.missing_cfg_file or ""
        found = re.search(r"Could not find '([^']+)'", str(e))
        where = found.group(1) if found else where
        option_group, _, name = where.rpartition("/")
        if option_group and e.options:
            return f"unknown {option_group} {name!r}; use one of: {', '.join(e.options)}"
        return f"{first}; check the config name"
    if isinstance(e, OverrideParseException):
        return (f"cannot parse the override {e.override!r} ({first}); write key=value, and quote values with "
                "spaces or special characters")
    if isinstance(e, ConfigCompositionException):
        taken = re.search(r"An item is already at '([^']+)'", first)
        if taken:
            return f"{taken.group(1)!r} is already in the config; set it with {taken.group(1)}=VALUE (no +)"
        key = re.search(r"Could not (?:override|append to config) '?([^'.\s]+(?:\.[^'.\s]+)*)'?", first)
        entry = re.search(r"Key '([^']+)' is not in struct", cause)
        append = re.search(r"To append to your config use (\S.*)", str(e))
        if key and entry and append and entry.group(1) != key.group(1).rpartition(".")[2]:
            # the key exists and holds a mapping; the override adds an entry to it, which needs a +
            return (f"{key.group(1)!r} is a mapping without the entry {entry.group(1)!r}; add entries with a +: "
                    f"{append.group(1).strip()}")
        if key and "not in struct" in cause:
            near = closest_key(schema or CONFIGS.get(command.split()[0], CONFIGS["train"]), key.group(1))
            hint = f"did you mean {near}? " if near else ""
            return f"unknown config key {key.group(1)!r}; {hint}see every key with `{listing}`"
        if key:
            return f"bad override for {key.group(1)!r}: {cause or first}; see the keys and values with `{listing}`"
        return f"{first}{'; ' + cause if cause else ''}"
    if isinstance(e, HydraException):
        return f"{first}{'; ' + cause if cause else ''}"
    if type(e).__module__.startswith("submitit"):
        refused = submission_failure(e)
        if refused is not None:
            return refused
        return (f"a sweep job did not finish ({unfinished_job(e)}); its run directory keeps the saved state: "
                "rerun the same command with hydra.sweep.dir=<the sweep directory> to resume the unfinished jobs")
    if isinstance(e, OSError) and e.filename:
        found = write_error(e, "the output directory")
        return str(found) if found else (f"cannot create the output directory {e.filename} ({e.strerror}); "
                                         "choose a writable one with hydra.run.dir=PATH (hydra.sweep.dir=PATH with -m)")
    return None


def compose(config_name: str = "train", overrides: list[str] | None = None, return_hydra_config: bool = False) -> Any:
    """Compose ``conf/<config_name>.yaml`` with command-line style overrides, from Python.

    ``compose("train", ["+task=digits_cnn", "epochs=5"])`` gives the config that
    ``python -m mlrsnet.train +task=digits_cnn epochs=5`` would run with.
    """
    from hydra import compose as hydra_compose
    from hydra import initialize_config_module
    from hydra.core.global_hydra import GlobalHydra

    GlobalHydra.instance().clear()
    with initialize_config_module(config_module="mlrsnet.conf", version_base="1.3"):
        return hydra_compose(config_name=config_name, overrides=list(overrides or []),
                             return_hydra_config=return_hydra_config)
