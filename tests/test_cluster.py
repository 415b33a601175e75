"""mlrsnet.engine.cluster without a cluster: sbatch refusals as one line naming the option, the squeue-based job
watcher, the launcher's defaults; and the thread-count option and record (run.set_threads, log.threads_info).
The same paths against a real slurmctld: tests/test_slurm.py."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch
from omegaconf import OmegaConf

from mlrsnet.engine.build import set_threads, usable_cpus
from mlrsnet.engine.cli import hydra_error
from mlrsnet.engine.cluster import _squeue_fallback_watcher, submission_failure
from mlrsnet.engine.log import environment
from mlrsnet.errors import ConfigError
from mlrsnet.train import meta_train, validate
from tests.conftest import compose


def sbatch_failure(stderr: str) -> Exception:
    """The error submitit raises when sbatch exits non-zero (FailedJobError from CalledProcessError)."""
    from submitit.core.utils import FailedJobError

    try:
        try:
            raise subprocess.CalledProcessError(1, ["sbatch", "/x/.submission_file_1.sh"], output="", stderr=stderr)
        except subprocess.CalledProcessError as cause:
            raise FailedJobError(stderr) from cause
    except FailedJobError as e:
        return e


@pytest.mark.parametrize(("stderr", "option"), [
    ("sbatch: error: invalid partition specified: nope\n"
     "sbatch: error: Batch job submission failed: Invalid partition name specified", "hydra.launcher.partition"),
    ("sbatch: error: Invalid generic resource (gres) specification", "hydra.launcher.gpus_per_node"),
    ("sbatch: error: Memory specification can not be satisfied\n"
     "sbatch: error: Batch job submission failed: Requested node configuration is not available",
     "hydra.launcher.mem_gb"),
    ("sbatch: error: Batch job submission failed: Invalid account or account/partition combination specified",
     "hydra.launcher.account"),
])
def test_an_sbatch_refusal_is_one_line_that_names_the_option(stderr, option):
    message = hydra_error(sbatch_failure(stderr), "task", "train")
    assert message is not None and "\n" not in message
    assert message.startswith(f"sbatch refused the sweep's jobs ({stderr.splitlines()[0]})")
    assert f"change {option} " in message and "nothing was submitted" in message and "resume" not in message


def test_a_job_that_failed_after_submission_keeps_the_resume_advice():
    from submitit.core.utils import UncompletedJobError

    error = UncompletedJobError("Job 12 (task: 0) with path x has not produced any output (state: CANCELLED)")
    assert submission_failure(error) is None
    assert hydra_error(error, "task", "train").startswith("a sweep job did not finish (job 12, task 0, state "
                                                          "CANCELLED")
    # submitit's whole message, as a job killed without a result leaves it: the line names the state and the
    # log's last line, where the one-line message used to stop at the result file's path.
    error = UncompletedJobError("\n".join([
        "Job 69 (task: 0) with path /s/.submitit/69/69_0_result.pkl", "has not produced any output (state: NODE_FAIL)",
        "Error stream produced:", "-" * 40, "submitit WARNING - Bypassing signal SIGCONT",
        "slurmstepd: error: *** JOB 69 ON localhost CANCELLED AT 2026-12-06T18:13:11 ***", ""]))
    message = hydra_error(error, "task", "train")
    assert "\n" not in message
    assert message.startswith("a sweep job did not finish (job 69, task 0, state NODE_FAIL, its logs in "
                              "/s/.submitit/69, its log ends: slurmstepd: error: *** JOB 69 ON localhost CANCELLED")
    assert message.endswith("to resume the unfinished jobs")


def test_the_squeue_watcher_reads_states_and_ends_the_wait_for_a_purged_job():
    from submitit.slurm.slurm import SlurmInfoWatcher

    watcher = _squeue_fallback_watcher(SlurmInfoWatcher)(delay_s=600)
    watcher.use_squeue = True
    assert watcher._make_command() is None  # nothing registered, nothing to ask
    for job in ("12", "13_0", "13_1"):
        watcher.register_job(job)
    assert watcher._make_command()[0] == "squeue"
    watcher._info_dict.update(watcher.read_info("12|RUNNING|localhost\n13_[0-1]|PENDING|\n"))
    assert [watcher.get_state(j, mode="cache") for j in ("12", "13_0", "13_1")] == ["RUNNING", "PENDING", "PENDING"]
    watcher._info_dict.update(watcher.read_info(b"13_0|CANCELLED|localhost\n13_1|RUNNING|localhost\n"))
    # 12 missing once (a squeue that answered while the controller was busy) is not yet the end of it.
    assert watcher.get_state("12", mode="cache") == "RUNNING"
    watcher._info_dict.update(watcher.read_info(b"13_0|CANCELLED|localhost\n13_1|RUNNING|localhost\n"))
    # 12 is gone from squeue twice (finished longer than MinJobAge ago): done, so the sweep stops waiting for it.
    assert [watcher.get_state(j, mode="cache") for j in ("12", "13_0", "13_1")] == ["PURGED", "CANCELLED", "RUNNING"]
    assert watcher.is_done("12", mode="cache") and watcher.is_done("13_0", mode="cache")
    assert not watcher.is_done("13_1", mode="cache")


def test_the_slurm_launcher_defaults_leave_resources_to_the_cluster():
    from hydra import compose as hydra_compose
    from hydra import initialize_config_module
    from hydra.core.global_hydra import GlobalHydra

    GlobalHydra.instance().clear()
    with initialize_config_module(config_module="mlrsnet.conf", version_base="1.3"):
        launcher = hydra_compose("train", overrides=["+task=digits_mlp", "hydra/launcher=slurm"],
                                 return_hydra_config=True).hydra.launcher
    GlobalHydra.instance().clear()
    assert (launcher.gpus_per_node, launcher.cpus_per_task, launcher.mem_gb) == (None, None, None)


def test_threads_sets_torch_and_defaults_to_the_usable_cpus(monkeypatch):
    before = torch.get_num_threads()
    try:
        assert set_threads(1) == 1 and torch.get_num_threads() == 1
        assert set_threads(None) == usable_cpus() == torch.get_num_threads()
        monkeypatch.setenv("SLURM_CPUS_PER_TASK", "1")  # a cluster that does not bind: SLURM's count wins
        assert usable_cpus() == 1 and set_threads(None) == 1
        # set_threads takes the typed config's value: a bad one is the config's one-line error, before any run
        plain = OmegaConf.to_container(compose(overrides=["+task=digits_mlp"]), resolve=True)
        for bad in (0, -2, "many", 1.5):
            with pytest.raises(ConfigError, match="^threads must be ") as info:
                validate({**plain, "threads": bad})
            assert "\n" not in str(info.value) and "set threads=" in str(info.value)
    finally:
        torch.set_num_threads(before)


def test_environment_json_records_threads_affinity_and_slurm(tmp_path, monkeypatch):
    monkeypatch.setenv("SLURM_CPUS_PER_TASK", "3")
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    before = torch.get_num_threads()
    try:
        meta_train(compose(overrides=["+task=digits_mlp", "epochs=1", "task.train_fraction=0.2", "threads=1",
                                      "progress=false", "snapshots=0"]), tmp_path)
    finally:
        torch.set_num_threads(before)
    threads = json.loads((tmp_path / "environment.json").read_text())["threads"]
    assert threads["torch_threads"] == 1
    assert threads["env"]["SLURM_CPUS_PER_TASK"] == "3" and threads["env"]["OMP_NUM_THREADS"] == "1"
    assert threads["cpu_affinity"] and threads["cpu_count"] >= len(threads["cpu_affinity"])
    assert environment()["threads"]["torch_interop_threads"] >= 1


def test_environment_json_records_the_cpu_its_kernels_and_a_missing_cpuinfo(tmp_path, monkeypatch):
    from mlrsnet.engine.log import cpu_info

    meta_train(compose(overrides=["+task=digits_mlp", "epochs=1", "task.train_fraction=0.2", "threads=1",
                                  "progress=false", "snapshots=0"]), tmp_path)
    cpu = json.loads((tmp_path / "environment.json").read_text())["cpu"]
    assert cpu["torch_capability"] == torch.backends.cpu.get_cpu_capability()
    assert cpu == cpu_info()
    fake = tmp_path / "cpuinfo"
    fake.write_text("processor\t: 0\nvendor_id\t: X\nmodel name\t: Test CPU @ 1.00GHz\nflags\t\t: fpu\n")
    assert cpu_info(fake)["model"] == "Test CPU @ 1.00GHz"
    monkeypatch.setattr("platform.processor", lambda: "")
    missing = cpu_info(tmp_path / "absent")
    assert missing["model"] is None and missing["torch_capability"] == cpu["torch_capability"]
    assert cpu_info(fake)["simd_flags"] == [] and missing["simd_flags"] == []


@pytest.mark.slow
def test_environment_json_records_the_instruction_set_pinning_a_bit_exact_rerun_needs():
    """Run with PIN_AVX2 set, torch's kernels are AVX2 ones whatever the CPU offers, and environment.json says so
    and what a rerun elsewhere must set; unset, it records the variables as null and no recipe."""
    from mlrsnet.engine.log import PIN_AVX2

    code = ("import json; from mlrsnet.engine.log import environment; print(json.dumps(environment()['cpu']))")
    base = {k: v for k, v in os.environ.items() if k not in PIN_AVX2}
    runs = {}
    for name, extra in (("pinned", PIN_AVX2), ("plain", {})):
        out = subprocess.run([sys.executable, "-c", code], env={**base, **extra}, capture_output=True, text=True,
                             timeout=120, check=True)
        runs[name] = json.loads(out.stdout.strip().splitlines()[-1])
    pinned, plain = runs["pinned"], runs["plain"]
    assert pinned["pinned_avx2"] and pinned["torch_capability"] == "AVX2"
    assert pinned["isa_env"]["ONEDNN_MAX_CPU_ISA"] == "AVX2" and pinned["reproduce"].split() == [
        f"{k}={v}" for k, v in PIN_AVX2.items()]
    assert not plain["pinned_avx2"] and plain["reproduce"] == "" and plain["isa_env"]["ATEN_CPU_CAPABILITY"] is None
    assert pinned["simd_flags"] == plain["simd_flags"]  # what the CPU offers; the pin caps what is used


def test_git_commit_is_dirty_for_code_not_for_results_a_script_rewrites(tmp_path, monkeypatch):
    import subprocess

    from mlrsnet.engine.log import git_commit

    files = ["mlrsnet/a.py", "conf/c.yaml", "experiments/run.py", "experiments/out/results.md",
             "experiments/out/results.csv", "experiments/out/runs/s0/summary.json", "README.md",
             "checkpoints/net.pt", "checkpoints/README.md", "tests/test_a.py", "vendor/mlrsnet/b.py"]
    for f in files:
        (tmp_path / f).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / f).write_text("0\n")
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-c", "commit.gpgsign=false"]
    subprocess.run([*git, "init", "-q"], cwd=tmp_path, check=True)
    subprocess.run([*git, "add", "-A"], cwd=tmp_path, check=True)
    subprocess.run([*git, "commit", "-qm", "x"], cwd=tmp_path, check=True)
    sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=tmp_path, capture_output=True, text=True).stdout.strip()
    inside = tmp_path / "mlrsnet"  # asked from the package's directory, as a run does
    for f in files:
        (tmp_path / f).write_text("1\n")
        code = f.endswith((".py", ".yaml", ".pt")) and not f.startswith(("tests/", "vendor/"))
        assert git_commit(inside) == sha + ("-dirty" if code else ""), f
        # a package vendored deeper in someone's repository: its own directory counts
        vendored = code or f.startswith("vendor/")
        assert git_commit(tmp_path / "vendor" / "mlrsnet") == sha + ("-dirty" if vendored else ""), f
        (tmp_path / f).write_text("0\n")
    (tmp_path / "experiments" / "new.py").write_text("untracked\n")  # untracked files never count
    assert git_commit(inside) == sha
    nogit = tmp_path.parent / f"{tmp_path.name}_nogit"
    nogit.mkdir()
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(nogit.parent))
    assert git_commit(nogit) == "unknown"


@pytest.mark.parametrize("state", ["SIGNALING", "CONFIGURING", "STAGE_OUT", "RESIZING", "SUSPENDED", "STOPPED",
                                   "REQUEUE_HOLD", "REQUEUE_FED", "SPECIAL_EXIT", "RESV_DEL_HOLD"])
def test_squeues_passing_states_are_not_the_end_of_a_job(state):
    """squeue shows SIGNALING for some milliseconds while slurmctld sends a job its time-limit warning (seen
    during tests/test_slurm.py's requeue test, whose sweep once ended in CI with "a sweep job did not finish"
    while its job ran on). submitit counts every state outside its own list as finished; the watcher must not."""
    from submitit.slurm.slurm import SlurmInfoWatcher

    watcher = _squeue_fallback_watcher(SlurmInfoWatcher)(delay_s=600)
    watcher.use_squeue = True
    watcher.register_job("12")
    watcher.register_job("13")
    watcher._info_dict.update(watcher.read_info(f"12|{state}|localhost\n13|{state}|\n"))
    assert not watcher.is_done("12", mode="cache") and not watcher.is_done("13", mode="cache")
    assert [watcher.get_state(j, mode="cache") for j in ("12", "13")] == ["RUNNING", "PENDING"]
    watcher._info_dict.update(watcher.read_info("12|TIMEOUT|localhost\n13|COMPLETING|localhost\n"))
    assert watcher.is_done("12", mode="cache") and not watcher.is_done("13", mode="cache")


def test_with_sacct_a_suspended_job_waits_and_a_cancelled_one_ends():
    """On a cluster with accounting, sacct's SUSPENDED and RESIZING are not finished either; its "CANCELLED by
    <uid>" is."""
    from submitit.slurm.slurm import SlurmInfoWatcher

    watcher = _squeue_fallback_watcher(SlurmInfoWatcher)(delay_s=600)
    watcher.use_squeue = False
    for job in ("21", "22", "23"):
        watcher.register_job(job)
    watcher._info_dict.update(watcher.read_info(
        "JobID|State|NodeList\n21|SUSPENDED|node1\n21.batch|SUSPENDED|node1\n22|CANCELLED by 1000|node1\n"
        "23|RESIZING|None assigned\n"))
    assert [watcher.get_state(j, mode="cache") for j in ("21", "22", "23")] == ["RUNNING", "CANCELLED by 1000",
                                                                               "PENDING"]
    assert [watcher.is_done(j, mode="cache") for j in ("21", "22", "23")] == [False, True, False]
