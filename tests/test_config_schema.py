"""The typed config schema (mlrsnet/engine/config.py): every key of every entry point's schema, given a value of
the wrong type, is a one-line error naming the full key, the value and the fix; through the command
line that is exit code 2, no traceback, and no run directory.

The walk over every key runs in-process on one composed config per entry point (fast); the command
line is sampled in-process through the real ``hydra.main`` and once in a subprocess.
"""

from __future__ import annotations

import copy
import sys
import typing
from pathlib import Path

import pytest

from mlrsnet.bench import validate_bench
from mlrsnet.engine.build import to_plain, validate
from mlrsnet.engine.cli import compose
from mlrsnet.engine.config import SCHEMAS, schema_keys
from mlrsnet.ensemble.study import validate_ensemble
from mlrsnet.errors import ConfigError
from mlrsnet.transfer import validate_transfer
from tests.conftest import run_cli

COMPOSE = {"train": ["+task=digits_mlp"], "transfer": ["+query=digits_mlp"], "bench": ["+task=digits_mlp"],
           "ensemble": ["+task=digits_mlp"], "rl": ["+task=nmf_synthetic"]}
VALIDATE = {"train": validate, "transfer": validate_transfer, "bench": validate_bench,
            "ensemble": validate_ensemble, "rl": lambda cfg: validate(cfg, "rl")}


def _annotation(schema: type, key: str) -> typing.Any:
    kind: typing.Any = schema
    for part in key.split("."):
        kind = typing.get_type_hints(kind)[part]
    return kind


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


@pytest.fixture(scope="module")
def composed() -> dict[str, dict]:
    return {entry: to_plain(compose(entry, COMPOSE[entry])) for entry in SCHEMAS}


def test_the_composed_configs_validate(composed):
    for entry, cfg in composed.items():
        VALIDATE[entry](copy.deepcopy(cfg))


@pytest.mark.parametrize("entry", list(SCHEMAS))
def test_every_key_with_a_wrongly_typed_value_is_a_one_line_error(entry, composed):
    schema, checked = SCHEMAS[entry], 0
    for key in schema_keys(schema):
        bad = _wrong_value(_annotation(schema, key))
        if bad is None:  # typed Any (schedule, resume, checkpoint, gamma, compare): checked by value below
            continue
        with pytest.raises(ConfigError) as info:
            VALIDATE[entry](_set(composed[entry], key, bad))
        message = str(info.value)
        assert "\n" not in message, (key, message)
        assert message.startswith(f"{key} must be "), (key, message)
        assert repr(bad) in message and f"set {key}=" in message, (key, message)
        checked += 1
    assert checked >= 50


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
    ("mlrsnet.train", ["+task=digits_mlp", "net.gamma=abc"], "net.gamma must be a number or null, got 'abc'"),
    ("mlrsnet.train", ["+task=digits_mlp", "optimizer.weight_decay=x"], "optimizer.weight_decay must be a number"),
    ("mlrsnet.train", ["+task=digits_mlp", "task.meta_size=x"], "task.meta_size must be an integer, got 'x'"),
    ("mlrsnet.train", ["+task=digits_mlp", "grad_clip=x"], "grad_clip must be a number or null, got 'x'"),
    ("mlrsnet.train", ["+task=digits_mlp", "optimizer.momentum=-1"], "optimizer.momentum must be in [0, 1)"),
    ("mlrsnet.train", ["+task=digits_mlp", "epoch=3"], "did you mean epochs?"),
    ("mlrsnet.train", ["+task=digits_cnn", "+query=digits_mlp"], "train takes +task=NAME, not +query="),
    ("mlrsnet.transfer", ["+query=digits_mlp", "gamma_min=x"], "gamma_min must be a number, got 'x'"),
    ("mlrsnet.bench", ["+task=digits_mlp", "tune_seed=x"], "tune_seed must be an integer, got 'x'"),
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


def test_a_subprocess_gets_the_same_one_line_error_and_no_run_directory(tmp_path: Path):
    proc = run_cli(["mlrsnet.train", "+task=digits_mlp", "optimizer.momentum=x"], cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert proc.stderr.strip() == ("error: optimizer.momentum must be a number or null, got 'x'; "
                                   "set optimizer.momentum=<number>")
    assert not (tmp_path / "runs").exists()


def test_schemas_are_in_hydras_config_store():
    from hydra.core.config_store import ConfigStore

    stored = ConfigStore.instance().repo["schema"]
    assert {f"{name}.yaml" for name in SCHEMAS} <= set(stored)


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
