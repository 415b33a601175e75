"""`python -m mlrsnet.report SWEEP_DIR`: one row per configuration, mean ± std over seeds."""

from __future__ import annotations

import csv
import io
import json
import statistics

import pytest
import yaml

from mlrsnet.report import aggregate, collect, main, report


def write_run(root, name: str, config: dict, summary: dict) -> None:
    run = root / name
    run.mkdir(parents=True)
    (run / "config.yaml").write_text(yaml.safe_dump(config))
    (run / "summary.json").write_text(json.dumps(summary))


def base_config(schedule: str, seed: int) -> dict:
    return {"seed": seed, "schedule": schedule, "epochs": 3, "progress": False, "device": "cpu",
            "logger": {"name": "none"}, "task": {"name": "digits_cnn", "meta_size": 100},
            "optimizer": {"name": "sgd", "lr": 0.1}}


@pytest.fixture
def sweep(tmp_path):
    accuracies = {"mlrsnet": [0.90, 0.92, 0.94], "fixed": [0.80, 0.84, 0.82]}
    for schedule, values in accuracies.items():
        for seed, acc in enumerate(values):
            write_run(tmp_path, f"{schedule}_{seed}", base_config(schedule, seed),
                      {"status": "complete", "final_test_accuracy": acc, "best_test_accuracy": acc + 0.01,
                       "final_train_loss": 1 - acc, "wall_time_s": 10.0 + seed, "metric": "accuracy",
                       "seed": seed, "gamma": 0.5})
    write_run(tmp_path, "fixed_3", base_config("fixed", 3),
              {"status": "diverged", "divergence": {"step": 3}, "seed": 3})
    return tmp_path, accuracies


def test_groups_by_the_keys_that_vary_except_the_seed(sweep):
    root, accuracies = sweep
    runs = collect(root)
    assert len(runs) == 7
    keys, rows = aggregate(runs)
    assert keys == ["schedule"]
    by_schedule = {r["schedule"]: r for r in rows}
    assert by_schedule["fixed"]["n"] == 3 and by_schedule["fixed"]["diverged"] == 1
    mean, std, count = by_schedule["mlrsnet"]["metrics"]["final_test_accuracy"]
    assert mean == pytest.approx(0.92) and std == pytest.approx(statistics.stdev(accuracies["mlrsnet"]))
    assert count == 3
    assert "gamma" not in by_schedule["mlrsnet"]["metrics"]  # only final_*, best_* and wall time


def test_markdown_csv_and_json(sweep, capsys, tmp_path_factory):
    root, _ = sweep
    table = report(root)
    lines = table.strip().splitlines()
    assert lines[0].startswith("| schedule | n | diverged |") and "final_test_accuracy" in lines[0]
    row = next(line for line in lines if line.startswith("| mlrsnet"))
    assert "0.92 ± 0.02" in row
    out = tmp_path_factory.mktemp("out") / "table.csv"
    assert main([str(root), "--format", "csv", "--out", str(out)]) == 0
    parsed = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert out.read_text() == report(root, "csv")
    fixed = next(r for r in parsed if r["schedule"] == "fixed")
    assert float(fixed["final_test_accuracy_mean"]) == pytest.approx(0.82) and fixed["diverged"] == "1"
    data = json.loads(report(root, "json"))
    assert {d["schedule"]: d["n"] for d in data} == {"mlrsnet": 3, "fixed": 3}


def test_single_configuration_is_named_by_task_and_schedule(tmp_path):
    for seed in range(2):
        write_run(tmp_path, f"run{seed}", base_config("mlrsnet", seed),
                  {"status": "complete", "final_test_accuracy": 0.9 + seed / 100})
    keys, rows = aggregate(collect(tmp_path))
    assert keys == ["task.name", "schedule"] and rows[0]["n"] == 2


def test_empty_directory_is_one_line(tmp_path, capsys):
    assert main([str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no summary.json under" in err[0]
