"""SLURM sweeps (``hydra/launcher=slurm``, hydra-submitit-launcher): what a real cluster needs beyond it.

Both are tested against a single-node slurmctld + slurmd in CI (tests/test_slurm.py, .ci/slurm-up):

- A cluster without job accounting (no slurmdbd, common on small clusters) cannot answer ``sacct``, which
  submitit polls for the jobs' states. submitit then logs "Bypassing sacct error ... accounting storage is
  disabled" every few seconds and never learns that a job was cancelled or killed without a result, so
  the sweep would wait for it forever. :func:`watch_slurm_jobs` makes submitit read the states from
  ``squeue`` once sacct has failed (squeue lists a finished job for the controller's MinJobAge, 300 s by
  default), and the log says so once. Passing states that submitit does not know (squeue's SIGNALING while
  a job gets its time-limit warning, CONFIGURING and the holds; sacct's SUSPENDED and RESIZING) count as
  unfinished, and a job that squeue no longer lists ends as PURGED only once two polls in a row miss it.
- When sbatch refuses the jobs (an unknown partition, a GPU request on a cluster without GPUs, ...) the
  sweep stops with one line that says nothing was submitted and names the ``hydra.launcher`` option to
  fix (:func:`submission_failure`), not with advice to resume.

submitit is imported only where it is used, so that importing this module costs nothing without it.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import re
import shutil
import subprocess
from typing import Any

log = logging.getLogger(__name__)

# sbatch's complaint -> the launcher option that fixes it, and a hint. First match wins ("invalid account or
# account/partition combination" is about the account).
_SBATCH_FIXES: tuple[tuple[str, str, str], ...] = (
    (r"invalid account|account/partition", "hydra.launcher.account", "`sacctmgr show assoc user=$USER` lists yours"),
    (r"qos", "hydra.launcher.qos", "`sacctmgr show qos` lists them"),
    (r"partition", "hydra.launcher.partition", "`sinfo` lists this cluster's partitions"),
    (r"gres|generic resource|gpu", "hydra.launcher.gpus_per_node", "null on a cluster without GPUs"),
    (r"feature|constraint", "hydra.launcher.constraint", "`sinfo -o %f` lists the node features"),
    (r"time limit", "hydra.launcher.timeout_min", "`sinfo -o '%P %l'` shows each partition's limit"),
    (r"memory", "hydra.launcher.mem_gb", "`sinfo -o '%P %m'` shows the nodes' memory in MB"),
    (r"node configuration|cpu|core", "hydra.launcher.cpus_per_task (or mem_gb, gpus_per_node)",
     "`sinfo -o '%P %c %m %G'` shows the nodes' CPUs, memory and GPUs"),
)


# The job states (man squeue, JOB STATE CODES; man sacct) that end a job. submitit counts every state outside
# its own short list of unfinished ones (PENDING, RUNNING, REQUEUED, COMPLETING, ...) as finished. squeue also
# shows passing states: SIGNALING for the few milliseconds while slurmctld sends a job its time-limit
# warning, CONFIGURING, STAGE_OUT, the holds; sacct has SUSPENDED and RESIZING. A poll that met one of them
# ended the sweep with "a sweep job did not finish" while the job ran on, so the watcher reports every state
# outside this set as unfinished.
SLURM_FINISHED = frozenset({"BOOT_FAIL", "CANCELLED", "COMPLETED", "DEADLINE", "FAILED", "NODE_FAIL",
                             "OUT_OF_MEMORY", "REVOKED", "TIMEOUT", "PURGED"})
# The states submitit itself counts as unfinished (submitit.core.core.InfoWatcher.is_done).
SUBMITIT_UNFINISHED = frozenset({"READY", "PENDING", "RUNNING", "UNKNOWN", "REQUEUED", "COMPLETING", "PREEMPTED"})


def submission_failure(e: BaseException) -> str | None:
    """The one-line message for submitit's error ``e`` when it is sbatch refusing the jobs: what sbatch
    said, that nothing was submitted, and the ``hydra.launcher`` option to change. None for any other
    error (a job that failed or was cancelled after it was submitted)."""
    cause = e.__cause__
    if not (isinstance(cause, subprocess.CalledProcessError) and cause.cmd and "sbatch" in str(cause.cmd[0])):
        return None
    lines = [line.strip() for line in str(cause.stderr or e).strip().splitlines() if line.strip()]
    said = next((line for line in lines if "error:" in line), lines[0] if lines else "no output")
    text = " ".join(lines).lower()
    option, hint = next(((opt, hint) for pattern, opt, hint in _SBATCH_FIXES if re.search(pattern, text)),
                        ("the hydra.launcher options", "see conf/hydra/launcher/slurm.yaml"))
    return (f"sbatch refused the sweep's jobs ({said}); nothing was submitted: change {option} ({hint}) and "
            "run the command again")


def unfinished_job(e: BaseException) -> str:
    """What submitit's error ``e`` says of a job that ended without a result, in a few words: its id, the
    state the cluster last gave it, where its log is and the log's last line."""
    text = str(e)
    job = re.search(r"Job (\S+) \(task: (\S+)\) with path (\S+)", text)
    state = re.search(r"\(state: ([^)]*)\)", text)
    if job is None:
        return text.strip().splitlines()[0] if text.strip() else type(e).__name__
    log_lines = [line.strip() for line in text.partition("-" * 40)[2].splitlines() if line.strip()]
    words = [f"job {job.group(1)}, task {job.group(2)}", f"state {state.group(1)}" if state else "",
             f"its logs in {os.path.dirname(job.group(3))}"]
    if log_lines:
        words.append(f"its log ends: {log_lines[-1][:200]}")
    return ", ".join(w for w in words if w)


def sacct_answers() -> bool:
    """Whether ``sacct`` works here (it fails where accounting storage is disabled)."""
    try:
        subprocess.run(["sacct", "--noheader", "-X", "--starttime=now"], capture_output=True, timeout=60,
                       check=True)
    except (OSError, subprocess.SubprocessError):
        return False
    return True


def _squeue_fallback_watcher(base: type) -> type:
    """A subclass of submitit's ``SlurmInfoWatcher`` (``base``) that asks ``sacct`` if it works on this cluster,
    else ``squeue`` (the user's jobs that the controller still holds, finished ones included)."""

    class SqueueFallbackWatcher(base):  # type: ignore[valid-type, misc]
        use_squeue: bool | None = None  # decided at the first update: whether sacct fails here
        unseen: frozenset[str] = frozenset()  # the known jobs the last squeue did not list

        def _make_command(self) -> list[str] | None:
            command = super()._make_command()
            if command is None or not self.use_squeue:
                return command
            # This user's jobs, one line per array element, finished ones included (for MinJobAge).
            return ["squeue", "--me", "--noheader", "--array", "--states=all", "--format=%i|%T|%N"]

        def update(self) -> None:
            if self.use_squeue is None and self._make_command() is not None:
                self.use_squeue = not sacct_answers()
                if self.use_squeue:
                    log.info("this SLURM cluster keeps no job accounting (sacct fails), so the jobs' states "
                             "are read from squeue instead")
            super().update()

        def read_info(self, string: bytes | str) -> dict[str, dict[str, str]]:
            if not self.use_squeue:
                info = super().read_info(string)
            else:
                text = string.decode() if isinstance(string, bytes) else string
                info = super().read_info("JobID|State|NodeList\n" + text)
            for stats in info.values():
                # A passing state that submitit does not know (squeue's SIGNALING, CONFIGURING, holds; also
                # sacct's SUSPENDED and RESIZING) is unfinished: RUNNING where the job holds a node, PENDING
                # where it does not. sacct writes "CANCELLED by <uid>": the first word is the state.
                state = (stats.get("State") or "").split(" ", 1)[0]
                if state and state not in SLURM_FINISHED | SUBMITIT_UNFINISHED:
                    nodes = stats.get("NodeList", "")
                    stats["State"] = "RUNNING" if nodes and not nodes.startswith("None") else "PENDING"
            if not self.use_squeue:
                return info
            # A job seen before that squeue no longer lists, twice in a row, finished longer than MinJobAge
            # ago: done (state PURGED), so that a job that died without a result ends the wait with
            # submitit's error instead of hanging the sweep. (_registered, _finished, _info_dict: submitit's
            # own bookkeeping of the watched ids and what it last learnt about them.)
            unseen = frozenset(job_id for job_id in self._registered - self._finished
                               if job_id not in info and job_id in self._info_dict)
            for job_id in unseen & self.unseen:
                info[job_id] = {"JobID": job_id, "State": "PURGED", "NodeList": ""}
            self.unseen = unseen
            return info

    return SqueueFallbackWatcher


def watch_slurm_jobs() -> bool:
    """On a machine with SLURM (``squeue`` on the PATH) and submitit installed, make submitit's SLURM jobs
    fall back to squeue for their states where sacct fails; True if installed. Cheap elsewhere."""
    if shutil.which("squeue") is None or importlib.util.find_spec("submitit") is None:
        return False
    from submitit.slurm.slurm import SlurmInfoWatcher, SlurmJob

    if type(SlurmJob.watcher).__name__ != "SqueueFallbackWatcher":
        watcher: Any = _squeue_fallback_watcher(SlurmInfoWatcher)(delay_s=SlurmJob.watcher._delay_s)
        SlurmJob.watcher = watcher
    return True
