"""logger=tensorboard: the run's per-step LR and loss, per-epoch metrics, LR curve and hparams with the final
metrics, read back from the event files."""

from __future__ import annotations

import pytest
from tensorboard.backend.event_processing import event_accumulator  # the [tensorboard] extra; dev (CI) has it

from mlrsnet.engine.cli import compose
from mlrsnet.engine.log import read_metrics
from mlrsnet.train import meta_train


def test_a_run_mirrors_its_metrics_to_tensorboard(tmp_path):
    summary = meta_train(compose("train", ["+task=digits_mlp", "epochs=2", "progress=false", "logger=tensorboard",
                                           "task.train_fraction=0.3"]), tmp_path / "run")
    acc = event_accumulator.EventAccumulator(str(tmp_path / "run" / "tensorboard"), size_guidance={"scalars": 0})
    acc.Reload()
    tags = acc.Tags()
    lines = read_metrics(tmp_path / "run" / "metrics.jsonl")
    steps = [r for r in lines if r["type"] == "step"]
    lr = acc.Scalars("train/lr")
    assert [e.step for e in lr] == [r["step"] for r in steps]
    assert [e.value for e in lr] == pytest.approx([r["lr"] for r in steps], rel=1e-6)
    test_acc = acc.Scalars("epoch/test_accuracy")
    assert [e.step for e in test_acc] == [1, 2] and test_acc[-1].value == pytest.approx(summary["final_test_accuracy"])
    assert "lr_schedule" in tags["images"]
    hparams = list((tmp_path / "run" / "tensorboard").rglob("events.out.tfevents.*"))
    assert len(hparams) >= 2  # the run's events and the HParams summary
