"""python -m mlrsnet.suite: workloads with targets on the meta split, both tuning rulesets, scores and paired
tests, a killed suite that resumes without rerunning finished trials, and bad input in one line."""

from __future__ import annotations

import csv
import json
import math
import os
import signal

import pytest

from mlrsnet.engine.cli import compose
from mlrsnet.engine.resume import StopSignals
from mlrsnet.engine.runner import read_record
from mlrsnet.errors import ConfigError, RunInterrupted
from mlrsnet.suite import plan_trials, suite, validate_suite
from tests.conftest import run_cli

TINY = ["schedules=[fixed,cosine]", "seeds=[0,1]", "jobs=1",
        "workloads=[{name: mlp, task: digits_mlp, epochs: 2, target: 0.5, overrides: ['task.train_fraction=0.3']},"
        "{name: nmf, task: nmf_synthetic, epochs: 2, target: 0.9, overrides: ['task.rows=60', 'task.cols=20']}]"]


@pytest.mark.slow
def test_the_self_ruleset_scores_every_schedule_on_every_workload(tmp_path):
    out = suite(compose("suite", TINY), tmp_path)
    assert {(r["workload"], r["schedule"]) for r in out["per_workload"]} == {
        (w, s) for w in ("mlp", "nmf") for s in ("fixed", "cosine")}
    assert all(r["n"] == 2 for r in out["per_workload"])
    with open(tmp_path / "results.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 8 and {r["seed"] for r in rows} == {"0", "1"}
    for r in rows:  # time to target read off the meta split's epoch records
        history = [json.loads(line) for line in open(tmp_path / "runs" / r["workload"] / r["schedule"] /
                                                      f"seed{r['seed']}" / "metrics.jsonl")]
        epochs = [h for h in history if h["type"] == "epoch"]
        key = f"meta_{r['metric']}"
        reached = [h["epoch"] for h in epochs if (h[key] >= 0.5 if r["workload"] == "mlp" else h[key] <= 0.9)]
        assert float(r["epochs_to_target"]) == (float(reached[0]) if reached else math.inf)
    assert set(out["scores"]) == {"fixed", "cosine"} and all(0 <= v <= 1 for v in out["scores"].values())
    assert len(out["paired"]) == 2 and all(t["n"] == 2 and t["a"] == "fixed" for t in out["paired"])
    assert (tmp_path / "profiles.png").read_bytes()[:4] == b"\x89PNG"
    assert "| rank | schedule |" in (tmp_path / "scores.md").read_text()
    assert "\n2 workloads: mlp, nmf.\n" in (tmp_path / "scores.md").read_text()


@pytest.mark.slow
def test_the_external_ruleset_draws_sobol_trials_from_the_declared_space_and_chooses_on_the_meta_split(tmp_path):
    cfg, _, _ = validate_suite(compose("suite", [*TINY, "ruleset=external", "trials=4"]))
    trials = plan_trials("cosine", cfg)
    assert len(trials) == 4 and all(0.1 <= t.lr_multiplier <= 10 for t in trials)
    assert len({t.lr_multiplier for t in trials}) == 4
    assert [t.lr_multiplier for t in plan_trials("cosine", cfg)] == [t.lr_multiplier for t in trials]  # seeded
    wsd = plan_trials("wsd", cfg)
    assert all(0.1 <= t.params["decay_fraction"] <= 0.5 for t in wsd)
    out = suite(compose("suite", [*TINY, "ruleset=external", "trials=4", "schedules=[cosine]",
                                  "seeds=[0]"]), tmp_path)
    with open(tmp_path / "trials.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 8 and sum(r["chosen"] == "True" for r in rows) == 2
    for w in ("mlp", "nmf"):
        mine = [r for r in rows if r["workload"] == w]
        scores = [float(r["meta_score"]) for r in mine if r["meta_score"]]
        best = max(scores) if w == "mlp" else min(scores)
        assert float(next(r for r in mine if r["chosen"] == "True")["meta_score"]) == best
    chosen = {r["workload"]: float(r["lr_multiplier"]) for r in rows if r["chosen"] == "True"}
    assert {r["workload"]: r["lr_multiplier"] for r in out["per_workload"]} == pytest.approx(chosen)


@pytest.mark.slow
def test_a_killed_suite_resumes_without_rerunning_finished_trials(tmp_path, monkeypatch):
    real, calls = StopSignals.requested, {"n": 0}

    def requested(self):
        calls["n"] += 1
        if calls["n"] == 20:
            os.kill(os.getpid(), signal.SIGTERM)
        return real(self)

    monkeypatch.setattr(StopSignals, "requested", requested)
    with pytest.raises(RunInterrupted):
        suite(compose("suite", TINY), tmp_path)
    monkeypatch.undo()
    done = {p.parent: p.stat().st_mtime_ns for p in tmp_path.rglob("summary.json")}
    assert done  # some runs finished before the stop
    suite(compose("suite", TINY), tmp_path)
    assert all(p.stat().st_mtime_ns == t for p, t in ((d / "summary.json", t) for d, t in done.items()))
    assert len(list(tmp_path.rglob("summary.json"))) == 8


def test_a_seed_worse_than_chance_is_failed_and_enters_the_paired_test_at_chance(tmp_path, monkeypatch):
    import mlrsnet.suite as suite_module

    real = suite_module._run

    def diverge_fixed(job):  # fixed ends far worse than chance on NMF (chance: relative error 1, zero factors)
        s = dict(real(job))
        if job.label == "fixed" and job.extra["workload"] == "nmf":
            s["final_test_rel_error"] = 1e18
        return s

    monkeypatch.setattr(suite_module, "_run", diverge_fixed)
    out = suite(compose("suite", [*TINY, "only=[nmf]", "overrides=['threads=1']"]), tmp_path)
    rows = {(r["schedule"], r["seed"]): r for r in out["rows"]}
    assert all(rows["fixed", k]["failed"] and rows["fixed", k]["chance"] == 1.0 for k in (0, 1))
    assert not any(rows["cosine", k]["failed"] for k in (0, 1))
    assert {r["schedule"]: r["failed"] for r in out["per_workload"]} == {"fixed": 2, "cosine": 0}
    (test,) = out["paired"]
    assert (test["a"], test["b"], test["failed_a"], test["failed_b"]) == ("fixed", "cosine", 2, 0)
    assert test["mean_diff"] == pytest.approx(1.0 - sum(rows["cosine", k]["final_test"] for k in (0, 1)) / 2)
    with open(tmp_path / "results.csv") as f:
        assert [r["failed"] for r in csv.DictReader(f) if r["schedule"] == "fixed"] == ["True", "True"]
    assert "| fixed | 2 | 1 | 2/2 | 2/2 |" in (tmp_path / "scores.md").read_text()  # reached on meta, failed on test
    # the table says which workloads it covers (only=) and the overrides every one ran with
    assert "\n1 workload (only=nmf); overrides: threads=1.\n" in (tmp_path / "scores.md").read_text()


def test_parallel_jobs_give_the_runs_of_one_thread_each(tmp_path):
    out = suite(compose("suite", [*TINY, "jobs=2", "seeds=[0]"]), tmp_path / "par")
    seq = suite(compose("suite", [*TINY, "jobs=1", "seeds=[0]", "overrides=['threads=1']"]), tmp_path / "seq")
    assert [r["final_test"] for r in out["rows"]] == [r["final_test"] for r in seq["rows"]]


@pytest.mark.parametrize(("overrides", "fragment"), [
    (["schedules=[cosin]"], "unknown schedule 'cosin'"),
    (["trials=0"], "trials must be >= 1"),
    (["workloads=[{name: a, task: no_such_task, epochs: 1, target: 0.5}]"], "workload a: cannot compose"),
    (["workloads=[{name: a, task: digits_mlp, epochs: 0, target: 0.5}]"], "workloads[0].epochs must be >= 1"),
    (["workloads=[]"], "the suite has no workloads"),
    (["only=[nmf,cifar]"], "only=['nmf', 'cifar']: the quick suite's workloads are ['mlp', 'nmf']"),
    # the optimiser is built before any run starts: schedule-free SGD needs momentum in (0, 1), NMF has none
    (["schedules=[cosine,sgd_schedulefree]"], "schedule sgd_schedulefree on task nmf_synthetic: optimizer "
     "sgd_schedulefree: schedulefree.SGDScheduleFree rejected the parameters (Momentum must be between 0 and 1"),
])
def test_bad_input_is_one_line(overrides, fragment):
    with pytest.raises(ConfigError) as info:
        validate_suite(compose("suite", [*TINY, *overrides]))
    assert fragment in str(info.value) and "\n" not in str(info.value)


VARIANT = "+variants={early: {schedule: multistep, params: {milestones_epochs: [0.5], gamma: 0.01}}}"


def test_a_variant_runs_its_schedule_with_its_parameters_beside_the_schedule(tmp_path):
    """Two configurations of one schedule side by side (e.g. two frozen bundles): a variant is a name in
    ``schedules``, its own run directories and rows; the schedule's plain runs are the same as without it."""
    over = ["schedules=[multistep,early]", "seeds=[0]", "only=[nmf]"]
    out = suite(compose("suite", [*TINY, *over, VARIANT]), tmp_path)
    rows = {r["schedule"]: r for r in out["rows"]}
    assert set(rows) == {"multistep", "early"} and rows["early"]["final_test"] != rows["multistep"]["final_test"]
    record = read_record(tmp_path / "runs" / "nmf" / "early" / "seed0")
    assert record.summary()["schedule"] == "multistep"
    assert record.summary()["schedule_params"]["gamma"] == 0.01
    from mlrsnet.report import aggregate, collect

    _, groups = aggregate(collect(tmp_path))
    assert sorted(g["schedule"] for g in groups) == ["early", "multistep"]  # the report names the variant
    plain = suite(compose("suite", [*TINY, "schedules=[multistep]", "seeds=[0]", "only=[nmf]"]), tmp_path / "plain")
    assert plain["rows"][0]["final_test"] == rows["multistep"]["final_test"]


@pytest.mark.parametrize(("variant", "fragment"), [
    ("{cosine: {schedule: multistep}}", "variants.cosine: cosine is a declared schedule"),
    ("{early: {schedule: multistep, params: {gamma: -1}}}", "variants.early.params.gamma must be positive, got -1"),
    ("{early: {schedule: nope}}", "unknown schedule 'nope'"),
    ("{early: {schedule: multistep, lr: 2}}", "variants.early must be {schedule: NAME, params: {KEY: VALUE}}"),
])
def test_a_bad_variant_is_one_line(variant, fragment):
    with pytest.raises(ConfigError) as info:
        validate_suite(compose("suite", [*TINY, "schedules=[early,cosine]", f"+variants={variant}"]))
    assert fragment in str(info.value) and "\n" not in str(info.value)


def test_the_bench_builds_every_optimiser_before_it_runs():
    from mlrsnet.bench import validate_bench

    with pytest.raises(ConfigError, match=r"^schedule sgd_schedulefree on task nmf_synthetic: .*Momentum must be "
                       r"between 0 and 1.*change the task's optimiser \(optimizer.KEY=VALUE\)$"):
        validate_bench(compose("bench", ["+task=nmf_synthetic", "schedules=[cosine,sgd_schedulefree]"]))
    validate_bench(compose("bench", ["+task=nmf_synthetic", "schedules=[cosine,sgd_schedulefree]",
                                     "optimizer.momentum=0.9"]))


@pytest.mark.slow
def test_the_command_line_runs_the_suite_and_refuses_bad_input(tmp_path):
    proc = run_cli(["mlrsnet.suite", *TINY, "seeds=[0]", "out_dir=out"], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert (tmp_path / "out" / "scores.md").is_file() and "Benchmark score" in proc.stdout
    bad = run_cli(["mlrsnet.suite", "ruleset=internal"], cwd=tmp_path)
    assert bad.returncode == 2 and bad.stderr.strip().startswith("error: ruleset='internal' is not one of")
    # a misspelt key is matched against the suite's own keys, and the listing command it names runs
    typo = run_cli(["mlrsnet.suite", "trails=3"], cwd=tmp_path)
    assert typo.returncode == 2 and typo.stderr.strip() == (
        "error: unknown config key 'trails'; did you mean trials? see every key with `python -m mlrsnet.suite "
        "--cfg job`")
    # a new entry of the variants mapping needs Hydra's +; the error says so and gives the override with it
    entry = run_cli(["mlrsnet.suite", "variants={fam: {schedule: mlrsnet_frozen}}"], cwd=tmp_path)
    assert entry.returncode == 2 and entry.stderr.strip() == (
        "error: 'variants' is a mapping without the entry 'fam'; add entries with a +: "
        "+variants={fam: {schedule: mlrsnet_frozen}}")


@pytest.mark.parametrize(("schedule", "over"), [("cosine", "batches"), ("fixed", "batches"), ("mlrsnet", "train"),
                                                ("mlrsnet_frozen", "train")])
def test_only_a_schedule_that_reads_l0_measures_it_over_the_training_split(monkeypatch, schedule, over):
    """Work no schedule needs is dropped: the whole-split L0 only where a schedule reads it (MLR-SNet's gamma);
    the baselines get the guard's 4-batch estimate, which leaves every RNG stream and result as it was."""
    import mlrsnet.engine.build as build
    from mlrsnet.engine.config import parse_config

    seen = []
    real = build.initial_loss
    monkeypatch.setattr(build, "initial_loss", lambda task, model, seed, o="train": seen.append(o) or
                        real(task, model, seed, o))
    cfg = parse_config(compose("train", ["+task=digits_mlp", "epochs=1", f"schedule={schedule}"]), "train")
    run = build.build_run(cfg)
    assert seen == [over] and math.isfinite(run.l0) and run.l0 > 0


def test_only_runs_the_named_workloads_of_a_suite():
    _, workloads, configs = validate_suite(compose("suite", [*TINY, "only=[nmf]"]))
    assert [w.name for w in workloads] == ["nmf"] and list(configs) == ["nmf"]
