"""The typed configs (mlrsnet/engine/config.py, mlrsnet/typed.py): every key of every entry point's config, of
every task family's ``task`` section and of every schedule's ``schedule`` section, given a value of the wrong type,
is a one-line error naming the full key, the value and the fix; through the command line that is exit code 2, no
traceback, and no run directory.

The walk over every key runs in-process on one composed config per entry point, task family and schedule (fast);
the command line is sampled in-process through the real ``hydra.main`` and once in a subprocess.
"""

from __future__ import annotations

import copy
import sys
import typing
from pathlib import Path

import pytest
import yaml
from omegaconf import OmegaConf

from mlrsnet.bench import validate_bench
from mlrsnet.engine.config import CONFIGS
from mlrsnet.ensemble.study import validate_ensemble
from mlrsnet.errors import ConfigError
from mlrsnet.rl.agent import validate_rl
from mlrsnet.schedules.registry import get_schedule, schedule_names, schedule_node
from mlrsnet.tasks import available_datasets, task_config
from mlrsnet.train import validate
from mlrsnet.transfer import validate_transfer
from mlrsnet.typed import defaults, keys
from tests.conftest import REPO, compose, run_cli

COMPOSE = {"train": ["+task=digits_mlp"], "transfer": ["+query=digits_mlp"], "bench": ["+task=digits_mlp"],
           "ensemble": ["+task=digits_mlp"], "rl": ["+task=nmf_synthetic"]}
VALIDATE = {"train": validate, "transfer": validate_transfer, "bench": validate_bench,
            "ensemble": validate_ensemble, "rl": validate_rl}



def _wrong_value(kind: typing.Any) -> typing.Any:
    """A value of the wrong type for a field of type ``kind`` (None where every value is accepted)."""
    args = [a for a in typing.get_args(kind) if a is not type(None)]
    if type(None) in typing.get_args(kind):
        kind = args[0]
    origin = typing.get_origin(kind) or kind
    if kind is typing.Any:
        return None
    if origin in (list, dict):
        return "x"
    return {int: "two", float: "abc", bool: "maybe", str: ["a", "b"]}[kind]


def _set(cfg: dict, key: str, value: typing.Any) -> dict:
    out = copy.deepcopy(cfg)
    node = out
    *parents, last = key.split(".")
    for part in parents:
        node = node.setdefault(part, {})
    node[last] = value
    return out


def _plain(entry: str, overrides: list[str]) -> dict:
    return OmegaConf.to_container(compose(entry, overrides), resolve=True)


def _walk(cfg: dict, validate_fn: typing.Callable[[dict], typing.Any],
          walked: list[tuple[str, typing.Any, str]]) -> int:
    """Give every key of ``walked`` a wrongly typed value in ``cfg``; each must be a one-line error naming the key,
    the value and the fix (every key that is not is listed in the failure). Returns how many keys were checked."""
    checked, wrong = 0, []
    for key, kind, _ in walked:
        if key == "task.dataset":  # chooses the task's config class: its own test below
            continue
        bad = _wrong_value(kind)
        if bad is None:  # typed Any (schedule, resume, checkpoint, gamma, compare, pool...): checked by value below
            continue
        checked += 1
        try:
            validate_fn(_set(cfg, key, bad))
        except ConfigError as e:
            message = str(e)
            if not ("\n" not in message and message.startswith(f"{key} must be ") and repr(bad) in message
                    and f"set {key}=" in message):
                wrong.append((key, message))
        except Exception as e:  # noqa: BLE001 - a traceback instead of a one-line error
            wrong.append((key, f"{type(e).__name__}: {e}"))
        else:
            wrong.append((key, "accepted"))
    assert not wrong, wrong
    return checked


@pytest.fixture(scope="module")
def composed() -> dict[str, dict]:
    return {entry: _plain(entry, COMPOSE[entry]) for entry in CONFIGS}


def test_the_composed_configs_validate(composed):
    for entry, cfg in composed.items():
        typed = VALIDATE[entry](copy.deepcopy(cfg))
        assert isinstance(typed, CONFIGS[entry])


@pytest.mark.parametrize("entry", list(CONFIGS))
@pytest.mark.slow
def test_every_key_with_a_wrongly_typed_value_is_a_one_line_error(entry, composed):
    typed = VALIDATE[entry](copy.deepcopy(composed[entry]))
    walked = keys(CONFIGS[entry]) + keys(type(typed.task), "task.")
    if hasattr(typed, "schedule"):
        walked += keys(type(typed.schedule.params), "schedule.")
    assert _walk(composed[entry], VALIDATE[entry], walked) >= 40


def _family_configs() -> dict[type, dict]:
    """One train config per task family (config class) of every registered dataset: composed with the first task
    file of the family, or, for a family no task file uses, the composed digits_mlp config with its ``task``
    section replaced by the family's defaults (the keys every task sets filled in)."""
    files: dict[type, str] = {}
    for path in sorted((REPO / "conf" / "task").glob("*.yaml")):
        files.setdefault(task_config(yaml.safe_load(path.read_text())["task"]["dataset"]), path.stem)
    base = _plain("train", ["+task=digits_mlp"])
    out: dict[type, dict] = {}
    for dataset in available_datasets():
        cls = task_config(dataset)
        if cls in out:
            continue
        if cls in files:
            out[cls] = _plain("train", [f"+task={files[cls]}"])
        else:
            section = {k: v for k, v in defaults(cls).items() if v != "???"}
            out[cls] = {**base, "task": {**section, "name": dataset, "dataset": dataset, "model": "mlp",
                                         "batch_size": 64, "meta_batch_size": 100}}
    return out


@pytest.mark.slow
def test_every_task_family_declares_its_keys_and_checks_them():
    families = _family_configs()
    assert len(families) >= 10
    for cls, cfg in families.items():
        assert type(validate(copy.deepcopy(cfg)).task) is cls
        assert _walk(cfg, validate, keys(cls, "task.")) >= 5, cls.__name__


def test_a_wrongly_typed_dataset_is_a_one_line_error(composed):
    """``task.dataset`` chooses the task section's class, so it is read before the section is parsed; a value of
    the wrong type there must still be the one-line error, not a traceback."""
    for bad in (["a", "b"], {"a": 1}):
        with pytest.raises(ConfigError) as info:
            validate(_set(composed["train"], "task.dataset", bad))
        assert "dataset" in str(info.value) and "\n" not in str(info.value), str(info.value)


@pytest.mark.slow
def test_every_schedule_declares_its_keys_and_checks_them(composed):
    checked = 0
    for name in schedule_names():
        cfg = {**composed["train"], "schedule": schedule_node(name)}
        assert validate(copy.deepcopy(cfg)).schedule.name == name
        checked += _walk(cfg, validate, keys(get_schedule(name).params, "schedule."))
    assert checked >= 2 * len(schedule_names())  # safe and at least one parameter of its own, on average


@pytest.mark.parametrize(("entry", "key", "value", "fragment"), [
    ("train", "schedule", 3, "unknown schedule"),
    ("train", "resume", "maybe", "resume must be auto, true or false"),
    ("bench", "schedules", [], "schedules must be a non-empty list"),
    ("transfer", "gamma", "big", "gamma='big'"),
    ("transfer", "compare", ["mlrsnet"], "compare: mlrsnet"),
    ("transfer", "checkpoint", [], "checkpoint=[]"),
])
def test_keys_of_more_than_one_type_are_checked_by_value(entry, key, value, fragment, composed):
    with pytest.raises(ConfigError) as info:
        VALIDATE[entry](_set(composed[entry], key, value))
    assert fragment in str(info.value) and "\n" not in str(info.value)


@pytest.mark.parametrize(("key", "value", "fragment"), [
    ("optimizer.momentum", -1, "optimizer.momentum must be in [0, 1), got -1"),
    ("grad_clip", -1, "grad_clip must be a positive gradient norm or null"),
    ("grad_clip", 0, "grad_clip must be a positive gradient norm or null"),
    ("task.noise.rate", 0.4, "task.noise.rate=0.4 has no effect with task.noise.kind=none"),
    ("task.noise.kind", "asym", "task.noise.kind='asym' is not one of none, sym, pair, unif, flip"),
    ("meta.K", 0, "meta.K must be >= 1"),
    ("net.gamma", -1.0, "net.gamma must be positive"),
    ("net.hidden_size", 0, "net.hidden_size must be >= 1"),
    ("optimizer.weight_decay", -0.1, "optimizer.weight_decay must be >= 0"),
    ("optimizer.name", "rmsprop", "optimizer.name='rmsprop' is not one of sgd, adam, adamw"),
    ("task.train_fraction", 0.0, "task.train_fraction must be in (0, 1]"),
    ("device", "gpu", "device='gpu' is not a device"),
    ("epoch", 3, "unknown config key epoch; did you mean epochs?"),
])
def test_ranges_and_silently_ignored_values_are_errors(key, value, fragment, composed):
    """The issue's reproductions: grad_clip=-1 trained to chance accuracy, a noise rate without a kind was
    silently clean, a negative momentum reached torch's ValueError."""
    with pytest.raises(ConfigError) as info:
        validate(_set(composed["train"], key, value))
    assert fragment in str(info.value) and "\n" not in str(info.value)


def _main(module: str, argv: list[str], monkeypatch, capsys) -> tuple[int, str]:
    import importlib

    monkeypatch.setattr(sys, "argv", [module, *argv])
    with pytest.raises(SystemExit) as info:
        importlib.import_module(module).main()
    return info.value.code, capsys.readouterr().err


@pytest.mark.parametrize(("module", "argv", "fragment"), [
    ("mlrsnet.train", ["+task=digits_mlp", "meta.K=two"], "meta.K must be an integer, got 'two'"),
    ("mlrsnet.train", ["+task=digits_mlp", "net.gamma=abc"], "net.gamma='abc': use net.gamma=null (the paper's "
     "formula), net.gamma=optimizer (twice the optimizer's LR) or a positive number"),
    ("mlrsnet.train", ["+task=digits_mlp", "net.gamma=-1"], "net.gamma must be positive, got -1; use net.gamma=null"),
    ("mlrsnet.train", ["+task=digits_mlp", "optimizer.weight_decay=x"], "optimizer.weight_decay must be a number"),
    ("mlrsnet.train", ["+task=digits_mlp", "task.meta_size=x"], "task.meta_size must be an integer, got 'x'"),
    ("mlrsnet.train", ["+task=digits_mlp", "grad_clip=x"], "grad_clip must be a number or null, got 'x'"),
    ("mlrsnet.train", ["+task=digits_mlp", "optimizer.momentum=-1"], "optimizer.momentum must be in [0, 1)"),
    ("mlrsnet.train", ["+task=digits_mlp", "epoch=3"], "did you mean epochs?"),
    ("mlrsnet.train", ["+task=digits_cnn", "+query=digits_mlp"], "train takes +task=NAME, not +query="),
    ("mlrsnet.transfer", ["+query=digits_mlp", "gamma_min=x"], "gamma_min must be a number, got 'x'"),
    ("mlrsnet.bench", ["+task=digits_mlp", "tune_seed=x"], "tune_seed must be an integer, got 'x'"),
    ("mlrsnet.train", ["+task=digits_mlp", "task.noise.rate=x"], "task.noise.rate must be a number, got 'x'"),
    ("mlrsnet.train", ["+task=digits_mlp", "schedule=cosine", "schedule.eta_min=x"],
     "schedule.eta_min must be a number, got 'x'"),
    ("mlrsnet.train", ["+task=digits_mlp", "task.bptt=3"], "unknown config key 'task.bptt'"),
    ("mlrsnet.train", ["+task=digits_mlp", "+schedule.safe=true"], "schedule.safe=VALUE (no +)"),
    ("mlrsnet.rl.__main__", ["train", "+task=nmf_synthetic", "rl.decisions=x"], "rl.decisions must be an integer"),
])
def test_the_command_line_prints_one_line_exits_2_and_makes_no_run_directory(
        module, argv, fragment, monkeypatch, capsys, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("HYDRA_FULL_ERROR", raising=False)
    code, err = _main(module, [*argv, "progress=false"], monkeypatch, capsys)
    lines = err.strip().splitlines()
    assert code == 2, err
    assert len(lines) == 1 and lines[0].startswith("error: ") and fragment in lines[0], err
    assert "Traceback" not in err
    assert not (tmp_path / "runs").exists(), list(tmp_path.rglob("*"))


@pytest.mark.slow
def test_a_subprocess_gets_the_same_one_line_error_and_no_run_directory(tmp_path: Path):
    proc = run_cli(["mlrsnet.train", "+task=digits_mlp", "optimizer.momentum=x"], cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert proc.stderr.strip() == ("error: optimizer.momentum must be a number or null, got 'x'; "
                                   "set optimizer.momentum=<number>")
    assert not (tmp_path / "runs").exists()


def test_configs_are_in_hydras_config_store():
    from hydra.core.config_store import ConfigStore

    import mlrsnet.engine.cli  # noqa: F401  (registers the nodes)

    repo = ConfigStore.instance().repo
    assert {f"{name}.yaml" for name in CONFIGS} <= set(repo["base"])
    assert {f"{name}.yaml" for name in schedule_names()} <= set(repo["schedule"])
    assert {f"{name}.yaml" for name in available_datasets()} <= set(repo["task_schema"])


def test_a_run_rejected_after_it_started_leaves_no_directory(monkeypatch, capsys, tmp_path):
    """A value only the task can judge (a meta set larger than the training set) is rejected once the run
    has started, after Hydra made the directory: the empty directory is removed again."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("HYDRA_FULL_ERROR", raising=False)
    code, err = _main("mlrsnet.train", ["+task=digits_mlp", "task.meta_size=5000", "progress=false"],
                      monkeypatch, capsys)
    assert code == 2 and "meta_size=5000 is not smaller than the training set" in err
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == []
    assert not list((tmp_path / "runs" / "train" / "digits_mlp").iterdir())
