"""`python -m mlrsnet.train` end to end, its errors, outputs and determinism."""

import json

import pytest
import torch

from mlrsnet.checkpoint import load_mlrsnet, load_nets
from mlrsnet.engine.log import read_metrics
from mlrsnet.io import file_sha256
from mlrsnet.train import meta_train
from tests.conftest import compose, run_cli

TINY = ["epochs=2", "task.train_fraction=0.3", "progress=false"]


@pytest.mark.slow
def test_cli_end_to_end_writes_all_outputs(tmp_path):
    r = run_cli(["mlrsnet.train", "+task=digits_mlp", *TINY, "hydra.run.dir=run", "copy_to_checkpoints=true"],
                cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    run = tmp_path / "run"
    for name in ["metrics.jsonl", "summary.json", "config.yaml", "environment.json", "mlrsnet.pt",
                 "lr_schedule.csv", "lr_schedule.png"]:
        assert (run / name).is_file(), name
    records = read_metrics(run / "metrics.jsonl")
    epochs = [r for r in records if r["type"] == "epoch"]
    steps = [r for r in records if r["type"] == "step"]
    assert [e["epoch"] for e in epochs] == [1, 2]
    for key in ["train_loss", "meta_loss", "test_accuracy", "lr_mean", "lr_min", "lr_max", "meta_accuracy"]:
        assert key in epochs[0], key
    assert len(steps) == epochs[-1]["step"] and all(s["lr"] > 0 for s in steps)
    summary = json.loads((run / "summary.json").read_text())
    assert summary["task"] == "digits_mlp" and 0 <= summary["final_test_accuracy"] <= 1
    env = json.loads((run / "environment.json").read_text())
    assert "torch" in env["versions"] and "git_commit" in env
    assert "digits_mlp" in (run / "config.yaml").read_text()
    net, meta = load_mlrsnet(run / "mlrsnet.pt")
    assert meta["task"] == "digits_mlp" and meta["schema_version"] == 1
    assert float(net.gamma) == pytest.approx(summary["gamma"])
    assert "torch" in meta["versions"]
    # The transfer bundle: the nets after epochs 1, N/2 and N (here N = 2), each with its gamma and config.
    nets, bmeta = load_nets(run / "mlrsnet_bundle.pt")
    assert bmeta["epochs"] == [1, 2] and bmeta["gammas"] == pytest.approx([summary["gamma"]] * 2)
    assert bmeta["config"]["task"]["name"] == "digits_mlp"
    assert all(torch.equal(a, b) for a, b in zip(nets[-1].state_dict().values(), net.state_dict().values(),
                                                    strict=True))
    assert summary["bundle"]["sha256"] == file_sha256(run / "mlrsnet_bundle.pt")
    copy = tmp_path / "checkpoints" / "digits_mlp_seed0.pt"
    assert copy.is_file() and summary["checkpoint_copy"] == {"path": str(copy.resolve()),
                                                             "sha256": summary["bundle"]["sha256"]}
    assert summary["optimizer"] == "SGD(momentum=0, wd=0.0005)"  # the reference meta-training's SGD
    assert (run / "lr_schedule.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.slow
def test_multirun_over_seeds_and_tasks(tmp_path):
    r = run_cli(["mlrsnet.train", "-m", "+task=digits_mlp,digits_cnn", "seed=0,1", "epochs=1",
                 "task.train_fraction=0.2", "progress=false", "log_steps=false", "hydra.sweep.dir=sweep"],
                cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    summaries = sorted((tmp_path / "sweep").glob("*/summary.json"))
    assert len(summaries) == 4
    seen = {(json.loads(p.read_text())["task"], json.loads(p.read_text())["seed"]) for p in summaries}
    assert seen == {("digits_mlp", 0), ("digits_mlp", 1), ("digits_cnn", 0), ("digits_cnn", 1)}


@pytest.mark.parametrize("task,extra", [
    ("digits_cnn", []),
    ("digits_cnn", ["meta.backend=higher", "meta.K=2"]),
    ("text_lstm_cpython", ["task.max_chars=20000", "batch_size=8", "task.bptt=16"]),
])
@pytest.mark.slow
def test_same_seed_same_numbers(tmp_path, task, extra):
    overrides = [f"+task={task}", "epochs=2", "progress=false", *extra]
    if task.startswith("digits"):
        overrides.append("task.train_fraction=0.3")
    a = meta_train(compose(overrides=overrides), tmp_path / "a")
    b = meta_train(compose(overrides=overrides), tmp_path / "b")
    ma = [r for r in read_metrics(tmp_path / "a" / "metrics.jsonl")]
    mb = [r for r in read_metrics(tmp_path / "b" / "metrics.jsonl")]
    strip = ("epoch_time",)
    assert [{k: v for k, v in r.items() if k not in strip} for r in ma] == \
           [{k: v for k, v in r.items() if k not in strip} for r in mb]
    metric = a["metric"]
    assert a[f"final_test_{metric}"] == b[f"final_test_{metric}"]
    c = meta_train(compose(overrides=[*overrides, "seed=1"]), tmp_path / "c")
    assert c["final_train_loss"] != a["final_train_loss"]


def test_fixed_schedule_keeps_the_lr(tmp_path):
    meta_train(compose(overrides=["+task=digits_mlp", "schedule=fixed", "optimizer.lr=0.05", *TINY]), tmp_path)
    lrs = {r["lr"] for r in read_metrics(tmp_path / "metrics.jsonl") if r["type"] == "step"}
    assert lrs == {0.05}
    assert not (tmp_path / "mlrsnet.pt").exists()
    assert "lr: 0.05" in (tmp_path / "config.yaml").read_text()  # the Python API records its config too
