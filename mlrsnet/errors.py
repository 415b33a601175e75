"""User-facing errors.

Anything a user can cause (a bad config value, a missing dataset, a corrupt checkpoint) raises a
subclass of :class:`MLRSNetError` whose message names the problem *and* the fix. Entry points catch
these and print a single line (``error: ...``) with exit code 2 instead of a traceback.
"""

from __future__ import annotations


class MLRSNetError(Exception):
    """Base class for errors caused by user input; the message is shown to the user as one line."""

    exit_code = 2


class ConfigError(MLRSNetError):
    """An invalid or unknown configuration value."""


class DataMissingError(MLRSNetError):
    """A dataset is not on disk and cannot be downloaded (e.g. the machine is offline)."""


class CheckpointError(MLRSNetError):
    """A checkpoint is corrupt, of another format, or does not match the expected architecture."""


class DivergenceError(MLRSNetError):
    """Training produced a non-finite loss or a learning rate outside the configured bounds."""

    exit_code = 3


class RunInterrupted(MLRSNetError):
    """A run stopped on SIGTERM / SIGUSR1 / SIGUSR2 after saving its state; re-running it resumes."""

    exit_code = 75  # sysexits.h EX_TEMPFAIL: a temporary failure, retrying will work


class WriteError(MLRSNetError):
    """A run could not write its outputs: a full disk, a read-only directory, no permission. What was
    written before (the last ``run_state.pt``, ``metrics.jsonl``) is left intact."""

    exit_code = 74  # sysexits.h EX_IOERR


class SchedulerCompositionError(MLRSNetError, RuntimeError):
    """A scheduler used in a way it cannot work (e.g. MLRSNetScheduler inside torch's ChainedScheduler)."""


class AdaptiveScaleWarning(UserWarning):
    """MLRSNetScheduler's recomputed gamma (the paper's SGD-scale LR ceiling) drives an adaptive optimizer
    (Adam, AdamW, ...), whose LRs are about 1e-3: the run will not learn unless ``scale`` is set."""
