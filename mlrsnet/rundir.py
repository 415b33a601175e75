"""Run directories: unique names, and one writer at a time.

Two runs started in the same second (seeds launched by hand, a cluster array job) must not share a
directory, so Hydra's default run directory ends in a sub-second timestamp and the ``run_id`` resolver's
suffix (the process id and a few random hex digits): ``runs/train/digits_cnn/2026-12-01_02-50-31-482113_
8123-a41f``. A directory named explicitly (``hydra.run.dir=PATH``, to resume a run) may still be named
by two processes; :class:`RunDirLock` makes the second refuse it with a one-line error instead of
interleaving its results with the first's.
"""

from __future__ import annotations

import errno
import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType

from mlrsnet.errors import ConfigError, WriteError

__all__ = ["LOCK_FILE", "RunDirLock", "exclusive", "open_run_dir", "register_resolvers", "run_id", "write_error"]

LOCK_FILE = ".lock"

# The errors of a full, read-only or over-quota file system: the user's to fix, not a bug.
_DISK_ERRNOS = {errno.ENOSPC, errno.EROFS, errno.EACCES, errno.EPERM, errno.EDQUOT, errno.EFBIG}


def run_id() -> str:
    """A short suffix that no other process starting at the same moment gets: ``<pid>-<4 hex digits>``."""
    return f"{os.getpid()}-{secrets.token_hex(2)}"


def register_resolvers() -> None:
    """Register ``${run_id:}`` (cached per config, so a config names one directory however often it is
    resolved)."""
    from omegaconf import OmegaConf

    if not OmegaConf.has_resolver("run_id"):
        OmegaConf.register_new_resolver("run_id", run_id, use_cache=True)


def write_error(e: OSError, what: str = "the run's outputs") -> WriteError | None:
    """A one-line error for a disk fault while writing ``what``, or None for any other OSError."""
    if e.errno not in _DISK_ERRNOS:
        return None
    where = f" {e.filename}" if e.filename else ""
    if e.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
        fix = "free some space (or raise the quota), then rerun the same command to resume from the last save"
    else:
        fix = "make it writable or choose another directory with hydra.run.dir=PATH (hydra.sweep.dir=PATH with -m)"
    return WriteError(f"cannot write {what}{where} ({e.strerror or os.strerror(e.errno)}); files already "
                      f"written are intact; {fix}")


class RunDirLock:
    """Context manager: create ``run_dir`` and hold an exclusive lock on it (``run_dir/.lock``, an advisory
    ``flock`` released by the kernel when the process ends, however it ends). A second process asking for
    the same directory gets a one-line :class:`ConfigError`; an unwritable directory a :class:`WriteError`.
    """

    def __init__(self, run_dir: str | os.PathLike) -> None:
        self.run_dir = Path(run_dir)
        self._fd: int | None = None

    def __enter__(self) -> RunDirLock:
        path = self.run_dir / LOCK_FILE
        try:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
        except OSError as e:
            raise write_error(e, "to the run directory") or e from None
        try:
            import fcntl
        except ImportError:  # no flock (Windows): unique directory names are the only guard
            self._fd = fd
            return self
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 64).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise ConfigError(
                f"run directory {self.run_dir} is in use by another run (pid {holder}); wait for it to finish, "
                "or choose another directory with hydra.run.dir=PATH"
            ) from None
        except OSError:  # a file system without locks (ENOLCK): unique directory names are the only guard
            self._fd = fd
            return self
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self._fd = fd
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor releases the flock
            self._fd = None


@contextmanager
def exclusive(path: str | os.PathLike) -> Iterator[None]:
    """Hold an exclusive lock on the file ``path`` (created if missing), waiting for it if another process holds
    it: for short sections that several processes take in turn (writing a shared table)."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(target, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        try:
            import fcntl

            fcntl.flock(fd, fcntl.LOCK_EX)
        except (ImportError, OSError):  # no flock here: the section runs unlocked
            pass
        yield
    finally:
        os.close(fd)


@contextmanager
def open_run_dir(run_dir: str | os.PathLike) -> Iterator[Path]:
    """Lock ``run_dir`` (:class:`RunDirLock`) for the duration of a run; a disk fault inside becomes a
    one-line :class:`WriteError` (files are written atomically or appended, so nothing written before is
    damaged)."""
    try:
        with RunDirLock(run_dir) as lock:
            yield lock.run_dir
    except OSError as e:
        error = write_error(e)
        if error is None:
            raise
        raise error from None
