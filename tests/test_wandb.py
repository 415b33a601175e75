"""Experiment tracking: ``logger=wandb`` offline mirrors config, metrics, the LR curve and the learned
MLR-SNet; without wandb (or with ``logger=none``) nothing breaks and the local files are written."""

from __future__ import annotations

import struct
import sys
import time
from pathlib import Path

import pytest

from mlrsnet.engine.log import read_metrics
from mlrsnet.errors import ConfigError
from mlrsnet.train import meta_train
from tests.conftest import compose

TINY = ["+task=digits_mlp", "task.train_fraction=0.3", "batch_size=32", "epochs=2", "progress=false"]


def wandb_records(path: Path) -> list:
    """The records of a ``run-*.wandb`` file: a LevelDB-style log (32 KiB blocks of chunks with a 7-byte
    header: crc32, length, type) after a 7-byte file header, each record a protobuf ``Record``."""
    from wandb.proto import wandb_internal_pb2 as pb

    data = path.read_bytes()
    assert data[:4] == b":W&B"
    records, pos, pending = [], 7, b""
    while pos + 7 <= len(data):
        room = 32768 - pos % 32768
        if room < 7:
            pos += room
            continue
        _, length, kind = struct.unpack("<IHB", data[pos:pos + 7])
        if kind == 0 and length == 0:
            pos += room
            continue
        chunk, pos = data[pos + 7:pos + 7 + length], pos + 7 + length
        pending += chunk
        if kind in (1, 4):  # a full record, or the last chunk of one
            record = pb.Record()
            record.ParseFromString(pending)
            records.append(record)
            pending = b""
        elif kind == 2:
            pending = chunk
    return records


def key(item) -> str:
    """A history / summary item's key (``train/lr`` may be stored as the nested key ``[train, lr]``)."""
    return item.key or "/".join(item.nested_key)


@pytest.mark.slow
def test_offline_wandb_run_holds_config_metrics_lr_curve_and_checkpoint(tmp_path, monkeypatch):
    pytest.importorskip("wandb")
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path / "wb"))
    monkeypatch.setenv("WANDB_SILENT", "true")
    summary = meta_train(compose(overrides=[*TINY, "logger=wandb", "logger.project=mlrsnet-test"]), tmp_path / "run")

    assert (tmp_path / "run" / "metrics.jsonl").is_file()  # local files whatever the logger
    files = list((tmp_path / "wb" / "wandb").glob("offline-run-*/run-*.wandb"))
    assert len(files) == 1, sorted(str(p) for p in (tmp_path / "wb").rglob("*"))
    local_steps = [r for r in read_metrics(tmp_path / "run" / "metrics.jsonl") if r["type"] == "step"]
    # wandb's service process writes the .wandb file; on a loaded machine (CI) its last buffer can reach the
    # disk a moment after run.finish() returns (a CI run once read the header alone): read until it is whole.
    deadline = time.monotonic() + 30
    while True:
        records = wandb_records(files[0])
        kinds = sorted({r.WhichOneof("record_type") for r in records})
        history = [{key(item): item.value_json for item in r.history.item} for r in records
                   if r.WhichOneof("record_type") == "history"]
        steps = [h for h in history if "train/lr" in h]
        epochs = [h for h in history if "epoch/test_accuracy" in h]
        if (len(steps) >= len(local_steps) and len(epochs) >= 2) or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert len(steps) == len(local_steps), (len(history), kinds)
    assert float(steps[0]["train/lr"]) == pytest.approx(local_steps[0]["lr"])
    assert [int(h["epoch"]) for h in epochs] == [1, 2], epochs
    assert float(epochs[-1]["epoch/test_accuracy"]) == pytest.approx(summary["final_test_accuracy"])
    assert any(k.startswith("lr_schedule/") for h in history for k in h)  # the LR curve, as an image
    media = [f.path for r in records if r.WhichOneof("record_type") == "files" for f in r.files.files]
    assert any(path.startswith("media/images/lr_schedule") for path in media)
    artifacts = [r.artifact for r in records if r.WhichOneof("record_type") == "artifact"]
    assert [(a.name, a.type) for a in artifacts] == [("mlrsnet-digits_mlp-seed0", "model")]
    runs = [r.run for r in records if r.WhichOneof("record_type") == "run"]
    config = {item.key: item.value_json for item in runs[0].config.update}
    assert "digits_mlp" in config["task"] and runs[0].project == "mlrsnet-test"
    summaries = {key(item): item.value_json for r in records if r.WhichOneof("record_type") == "summary"
                 for item in r.summary.update}
    assert float(summaries["final_test_accuracy"]) == pytest.approx(summary["final_test_accuracy"])


def test_without_wandb_installed(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "wandb", None)  # `import wandb` now raises ImportError
    with pytest.raises(ConfigError, match="logger=wandb needs the wandb package; pip install wandb"):
        meta_train(compose(overrides=[*TINY, "logger=wandb"]), tmp_path / "a")
    summary = meta_train(compose(overrides=[*TINY, "epochs=1"]), tmp_path / "b")  # logger=none: the default
    assert summary["status"] == "complete" and (tmp_path / "b" / "metrics.jsonl").is_file()
