"""The pool (mlrsnet.ensemble.pool), a pool from a finished bench, and `python -m mlrsnet.ensemble` end to end."""

import csv
import json

import numpy as np
import pytest
import torch

from mlrsnet.bench import bench
from mlrsnet.engine.build import build_run
from mlrsnet.engine.cli import compose
from mlrsnet.engine.runner import read_record
from mlrsnet.ensemble import bench_pool, load_probabilities, lrensemble, pool_entries, resolve_relative
from mlrsnet.errors import ConfigError
from mlrsnet.train import validate
from tests.conftest import REPO, run_cli

TINY_POOL = ("pool=[{name: fixed, lr_multipliers: [1]}, {name: cosine, lr_multipliers: [0.5, 1]},"
             "{name: comp, schedule: lrbench, params: {policy: COMPOSITE, segments: "
             "[[0, FIX, {k0: lr0}], [0.5*T, EXP, {k0: 0.1*lr0, gamma: 0.99}]]}, lr_multipliers: [1]}]")


def test_run_relative_params_resolve_against_the_run():
    params = {"l": "T", "k0": "0.1*lr0", "segments": [[0, "COS", {"l": "0.25*T"}], ["0.5*T", "FIX", {"k0": "lr0"}]],
              "policy": "TRI"}
    assert resolve_relative(params, 200, 0.1) == {
        "l": 200, "k0": pytest.approx(0.01), "policy": "TRI",
        "segments": [[0, "COS", {"l": 50}], [100, "FIX", {"k0": 0.1}]]}


def test_pool_entries_expand_multipliers_and_reject_bad_entries():
    entries = pool_entries([{"name": "cosine", "lr_multipliers": [0.5, 1]},
                            {"name": "tri", "schedule": "lrbench", "params": {"policy": "TRI"}}])
    assert [e.member for e in entries] == ["cosine@x0.5", "cosine@x1", "tri@x1"]
    assert entries[2].schedule == "lrbench" and entries[2].params == {"policy": "TRI"}
    with pytest.raises(ConfigError, match="unknown schedule 'nope'"):
        pool_entries([{"name": "nope"}])
    with pytest.raises(ConfigError, match="lr_multipliers must be"):
        pool_entries([{"name": "cosine", "lr_multipliers": [0]}])
    with pytest.raises(ConfigError, match="twice"):
        pool_entries([{"name": "cosine"}, {"name": "cosine"}])
    with pytest.raises(ConfigError, match="unknown key"):
        pool_entries([{"name": "cosine", "lr": [1]}])


def test_predict_proba_agrees_with_evaluate():
    cfg = validate(compose("train", ["+task=digits_mlp", "epochs=1"]))
    run = build_run(cfg, seed=0, schedule="fixed")
    probs, labels = run.task.predict_proba(run.model, "meta")
    assert probs.shape == (labels.numel(), 10) and probs.dtype == torch.float32
    assert torch.allclose(probs.sum(1), torch.ones(len(probs)))
    acc = float((probs.argmax(1) == labels).float().mean())
    assert acc == pytest.approx(run.task.evaluate(run.model, "meta")["accuracy"])


@pytest.fixture(scope="module")
def bench_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench")
    cfg = compose("bench", ["+task=digits_mlp", "epochs=1", "schedules=[fixed,cosine,step]", "seeds=[0]",
                            "tune=false", "progress=false"])
    bench(cfg, out)
    return out


def test_bench_saves_each_runs_probabilities_once(bench_dir):
    z = load_probabilities(bench_dir / "runs" / "cosine" / "seed0" / "probs.npz")
    assert z["meta_probs"].shape == (100, 10) and z["test_probs"].shape[1] == 10
    assert z["info"]["task"] == "digits_mlp" and z["info"]["schedule"] == "cosine"
    with np.load(bench_dir / "runs" / "cosine" / "seed0" / "probs.npz") as raw:
        assert raw["meta_probs"].dtype == np.float16
    run = read_record(bench_dir / "runs" / "cosine" / "seed0")
    assert run is not None and run.status == "complete"
    final = run.history[-1]
    assert np.mean(z["test_probs"].argmax(1) == z["test_labels"]) == pytest.approx(final["test_accuracy"])


def test_a_pool_from_a_finished_bench_needs_no_training(bench_dir, tmp_path, monkeypatch):
    pool = bench_pool(bench_dir, 0, "digits_mlp")
    assert pool.names == ["cosine@x1", "fixed@x1", "step@x1"]
    import mlrsnet.ensemble.pool as pool_module

    monkeypatch.setattr(pool_module, "execute", lambda *a, **k: pytest.fail("trained a model"))
    cfg = compose("ensemble", ["+task=digits_mlp", "seeds=[0]", f"from_bench={bench_dir}", "max_team_size=3"])
    results = lrensemble(cfg, tmp_path)
    assert {r["method"] for r in results["rows"]} == {"best single", "all", "brute", "greedy", "focal"}
    with pytest.raises(ConfigError, match="holds task 'digits_mlp', not 'digits_cnn'"):
        bench_pool(bench_dir, 0, "digits_cnn")
    with pytest.raises(ConfigError, match="no run of seed 5"):
        bench_pool(bench_dir, 5)


@pytest.mark.slow
def test_the_command_line_end_to_end_on_a_tiny_pool(tmp_path):
    out = tmp_path / "ens"
    args = ["mlrsnet.ensemble", "+task=digits_mlp", "epochs=2", "seeds=[0,1]", TINY_POOL, "max_team_size=3",
            f"out_dir={out}", f"hydra.run.dir={tmp_path / 'hydra'}"]
    proc = run_cli(args, cwd=REPO, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    for name in ("results.md", "results.csv", "pool.csv", "diversity.png", "config.yaml", "environment.json"):
        assert (out / name).is_file(), name
    rows = list(csv.DictReader((out / "results.csv").open()))
    assert len(rows) == 2 * (1 + 4 * 2)  # per seed: best single + 4 methods x 2 combiners
    single = {r["seed"]: float(r["test_accuracy"]) for r in rows if r["method"] == "best single"}
    for r in rows:
        assert float(r["gain"]) == pytest.approx(float(r["test_accuracy"]) - single[r["seed"]])
    assert "| greedy | soft |" in (out / "results.md").read_text()
    member_file = out / "members" / "seed0" / "comp@x1" / "summary.json"
    steps = build_run(validate(compose("train", ["+task=digits_mlp"])), schedule="fixed").task.steps_per_epoch
    assert json.loads(member_file.read_text())["params"]["segments"][1][0] == steps  # 0.5*T, T = 2 epochs
    # a rerun reuses every base model
    written = {p: p.stat().st_mtime_ns for p in out.glob("members/*/*/summary.json")}
    assert len(written) == 2 * 4
    again = run_cli(args, cwd=REPO, timeout=300)
    assert again.returncode == 0, again.stderr[-3000:]
    assert {p: p.stat().st_mtime_ns for p in out.glob("members/*/*/summary.json")} == written
    assert list(csv.DictReader((out / "results.csv").open())) == rows
    bad = run_cli(["mlrsnet.ensemble", "+task=digits_mlp", "methods=[vote]", f"hydra.run.dir={tmp_path / 'h2'}"],
                  cwd=REPO)
    assert bad.returncode == 2 and bad.stderr.strip().splitlines() == [
        "error: methods must be a non-empty list of all, brute, greedy, focal; got ['vote']"]
