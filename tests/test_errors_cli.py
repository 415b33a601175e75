"""Bad input through the real command line: every case prints one line, ``error: ...``, that names the
problem and the fix, and exits with code 2.

The commands fail before any training, so they run concurrently (a few at a time) in one fixture; each
case is then checked by its own test.
"""

from __future__ import annotations

import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

TASK = ["+task=digits_mlp", "progress=false", "epochs=1"]

# name -> (module, arguments, fragments the one error line must contain)
CASES: dict[str, tuple[str, list[str], list[str]]] = {
    "unknown_key": ("mlrsnet.train", [*TASK, "optimizer.lrr=0.1"],
                    ["unknown config key 'optimizer.lrr'", "did you mean optimizer.lr?", "--cfg job"]),
    "negative_lr": ("mlrsnet.train", [*TASK, "optimizer.lr=-0.1"], ["optimizer.lr must be positive, got -0.1"]),
    "noise_rate": ("mlrsnet.train", [*TASK, "task.noise.kind=sym", "task.noise.rate=1.0"],
                   ["task.noise.rate must be in [0, 1), got 1.0"]),
    "meta_set_too_large": ("mlrsnet.train", [*TASK, "task.meta_size=5000"],
                           ["meta_size=5000 is not smaller than the training set", "lower task.meta_size"]),
    "meta_interval": ("mlrsnet.train", [*TASK, "meta.interval=0"], ["error: meta.interval must be >= 1, got 0"]),
    "not_a_number": ("mlrsnet.train", [*TASK, "epochs=ten"], ["epochs must be an integer, got 'ten'"]),
    "unknown_task": ("mlrsnet.train", ["+task=cifar11"], ["unknown task 'cifar11'", "digits_cnn", "text_lstm_cpython"]),
    "missing_task": ("mlrsnet.train", ["epochs=1"], ["no task given", "+task=NAME", "digits_cnn"]),
    "unknown_schedule": ("mlrsnet.train", [*TASK, "schedule=warp"], ["unknown schedule 'warp'", "cosine"]),
    "unknown_query": ("mlrsnet.transfer", ["+query=mnist"], ["unknown query 'mnist'", "digits_mlp", "text_lstm"]),
    "unknown_logger": ("mlrsnet.train", [*TASK, "logger=neptune"],
                       ["unknown logger 'neptune'", "wandb", "tensorboard"]),
    "unknown_launcher": ("mlrsnet.train", [*TASK, "hydra/launcher=pbs"],
                         ["unknown hydra/launcher 'pbs'", "slurm", "local"]),
    "bad_override": ("mlrsnet.train", [*TASK, "seed=["], ["cannot parse the override 'seed=['", "key=value"]),
    "unwritable_output_dir": ("mlrsnet.train", [*TASK, "hydra.run.dir=/proc/forbidden/run"],
                              ["/proc/forbidden", "hydra.run.dir=PATH"]),
    "corrupt_run_state": ("mlrsnet.train", [*TASK, "hydra.run.dir=corrupt", "resume=true"],
                          ["run_state.pt is corrupt", "resume=false"]),
    "missing_run_state": ("mlrsnet.train", [*TASK, "hydra.run.dir=empty", "resume=true"],
                          ["resume=true but", "has no run_state.pt", "hydra.run.dir"]),
    "corrupt_checkpoint": ("mlrsnet.transfer", ["+query=digits_mlp", "progress=false", "checkpoint=bad.pt"],
                           ["bad.pt is corrupt"]),
}


@pytest.fixture(scope="module")
def results(tmp_path_factory) -> dict[str, tuple[subprocess.CompletedProcess, Path]]:
    # The directories are made here, not in the threads: the factory's first mktemp creates the session's base
    # directory, and two threads doing that at once each make one (then fail its relative-path check).
    dirs = {name: tmp_path_factory.mktemp(name) for name in CASES}

    def run(name: str) -> tuple[subprocess.CompletedProcess, Path]:
        module, args, _ = CASES[name]
        cwd = dirs[name]
        (cwd / "corrupt").mkdir()
        (cwd / "corrupt" / "run_state.pt").write_bytes(b"\x00 not a checkpoint")
        (cwd / "bad.pt").write_bytes(b"PK\x03\x04 truncated")
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        env.pop("HYDRA_FULL_ERROR", None)
        proc = subprocess.run([sys.executable, "-m", module, *args], cwd=cwd, capture_output=True, text=True,
                              timeout=300, env=env)
        return proc, cwd

    with ThreadPoolExecutor(max_workers=4) as pool:
        return dict(zip(CASES, pool.map(run, CASES), strict=True))


@pytest.mark.parametrize("name", list(CASES))
@pytest.mark.slow
def test_one_line_error_naming_problem_and_fix(results, name):
    proc, _ = results[name]
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert len(lines) == 1, proc.stderr[-3000:]
    assert lines[0].startswith("error: ")
    for fragment in CASES[name][2]:
        assert fragment in lines[0]
    assert "Traceback" not in proc.stderr


@pytest.mark.slow  # shares the module fixture of the slow CLI cases (40 s)
def test_errors_come_before_any_training(results):
    for name in ("negative_lr", "meta_interval", "unknown_key", "corrupt_run_state"):
        proc, cwd = results[name]
        assert not list(cwd.rglob("metrics.jsonl")), name


def test_a_sweep_job_that_left_no_result_is_one_line():
    utils = pytest.importorskip("submitit.core.utils")
    from mlrsnet.engine.cli import hydra_error

    error = utils.UncompletedJobError("Job 7 (task: 0) with path /x/7_0_result.pkl\nhas not produced any output")
    message = hydra_error(error, "task", "train")
    assert message is not None and "\n" not in message
    assert "(job 7, task 0, its logs in /x)" in message and "hydra.sweep.dir=" in message
