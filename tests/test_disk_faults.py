"""Disk faults (a full disk, a read-only directory) end a run with one line and a non-zero exit code, and
damage nothing already written: the last good run_state.pt and metrics.jsonl survive, and rerunning the
same command resumes from them to the numbers of an uninterrupted run.

The faults are injected as the OSError the operating system raises (the tests may run as root, whom a
read-only mode bit does not stop).
"""

from __future__ import annotations

import errno
import os
import sys
from pathlib import Path

import pytest

from mlrsnet.engine.cli import hydra_error
from mlrsnet.engine.log import read_metrics
from mlrsnet.engine.resume import load_run_state
from mlrsnet.errors import WriteError
from mlrsnet.rundir import LOCK_FILE
from mlrsnet.train import meta_train
from tests.conftest import compose

OVERRIDES = ["+task=digits_mlp", "task.train_fraction=0.3", "batch_size=32", "schedule=fixed", "epochs=3",
             "progress=false", "snapshots=0"]


def records(run_dir: Path) -> list[dict]:
    return [{k: v for k, v in r.items() if k != "epoch_time"} for r in read_metrics(run_dir / "metrics.jsonl")]


def fill_disk_at(monkeypatch, save: int) -> None:
    """The ``save``-th write of run_state.pt (1: the one before training) fails with ENOSPC in its fsync, as
    a full disk fails a write that the page cache accepted."""
    real = os.fsync
    seen = {"n": 0}

    def fsync(fd: int) -> None:
        if ".run_state.pt." in os.readlink(f"/proc/self/fd/{fd}"):
            seen["n"] += 1
            if seen["n"] == save:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real(fd)

    monkeypatch.setattr(os, "fsync", fsync)


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs /proc to name a descriptor's file")
@pytest.mark.slow
def test_a_full_disk_is_one_line_and_the_last_good_state_resumes(tmp_path, monkeypatch):
    reference = meta_train(compose(overrides=OVERRIDES), tmp_path / "ref")
    run = tmp_path / "run"
    fill_disk_at(monkeypatch, 3)  # saves: before training, after epoch 1, after epoch 2 (fails)
    with pytest.raises(WriteError) as info:
        meta_train(compose(overrides=OVERRIDES), run)
    message = str(info.value)
    assert "\n" not in message and "No space left on device" in message and "resume" in message
    assert info.value.exit_code != 0
    monkeypatch.undo()

    state = load_run_state(run / "run_state.pt")  # the last good save, intact
    assert state["epoch"] == 1
    assert not list(run.glob(".run_state.pt.*.tmp"))
    epochs = [r["epoch"] for r in read_metrics(run / "metrics.jsonl") if r["type"] == "epoch"]
    assert epochs == [1, 2]  # every line written before the fault is there
    assert not (run / "summary.json").exists()

    resumed = meta_train(compose(overrides=OVERRIDES), run)  # the same command, the disk freed
    assert records(run) == records(tmp_path / "ref")
    assert resumed["final_test_accuracy"] == reference["final_test_accuracy"]


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs /proc to name a descriptor's file")
def test_a_full_disk_through_the_command_line_is_one_line_and_a_non_zero_exit(tmp_path, monkeypatch, capsys):
    from mlrsnet import train

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("HYDRA_FULL_ERROR", raising=False)
    fill_disk_at(monkeypatch, 2)
    monkeypatch.setattr(sys, "argv", ["mlrsnet.train", *OVERRIDES, "hydra.run.dir=run"])
    with pytest.raises(SystemExit) as info:
        train.main()
    err = capsys.readouterr().err
    assert info.value.code == WriteError.exit_code != 0
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: cannot write") and "No space left" in lines[0], err
    assert load_run_state(tmp_path / "run" / "run_state.pt")["epoch"] == 0


def test_a_read_only_run_directory_is_one_line_and_left_as_it_was(tmp_path, monkeypatch):
    run = tmp_path / "run"
    overrides = [*OVERRIDES, "epochs=1"]
    meta_train(compose(overrides=overrides), run)
    before = {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()}

    real_open = os.open

    def read_only(path, flags, *args, **kwargs):
        if str(path).startswith(str(run)) and flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT):
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(path))
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", read_only)
    with pytest.raises(WriteError) as info:
        meta_train(compose(overrides=[*overrides, "epochs=2"]), run)
    monkeypatch.undo()
    message = str(info.value)
    assert "\n" not in message and "Read-only file system" in message and "hydra.run.dir=PATH" in message
    assert str(run / LOCK_FILE) in message
    assert {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()} == before


def test_hydras_own_write_into_a_read_only_directory_is_one_line():
    """Hydra writes .hydra/ into the run directory before the run starts; that failure is one line too."""
    e = PermissionError(errno.EACCES, os.strerror(errno.EACCES), "/data/runs/x/.hydra/config.yaml")
    message = hydra_error(e, "task", "train")
    assert message is not None and "\n" not in message
    assert "/data/runs/x/.hydra/config.yaml" in message and "Permission denied" in message
    assert "hydra.run.dir=PATH" in message
