"""Find a dataset on disk, or fetch it from its canonical URL, or say in one line how to get it.

Every loader calls :func:`ensure_files` first, so "where does the data live and what if it is not
there" has one answer: files live under a data ``root`` in the layout their official archive unpacks
to; missing files are downloaded (MD5-checked, written atomically so an interrupted download never
looks complete); and when that is impossible (offline, or downloads disabled with ``download=False``
or the ``MLRSNET_OFFLINE`` environment variable) the user gets a :class:`DataMissingError` that names
the files, the directory and the URL to fetch by hand.
"""

from __future__ import annotations

import hashlib
import http.client
import logging
import os
import shutil
import tarfile
import tempfile
import urllib.request
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from mlrsnet.errors import DataMissingError

OFFLINE_ENV = "MLRSNET_OFFLINE"
"""Set to a non-empty value other than ``0`` to forbid all downloads (clusters without internet)."""

_TIMEOUT_S = 30.0
_CHUNK = 1 << 20  # bytes per read, so multi-GB downloads stream through a small buffer
_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Remote:
    """One file to fetch: its URL, its MD5 (``None`` where no checksum is published), whether it is a
    ``.tar*``/``.zip`` archive to unpack, and the directory under the data root it lands in."""

    url: str
    md5: str | None
    unpack: bool = False
    subdir: str = ""

    @property
    def filename(self) -> str:
        return self.url.rsplit("/", 1)[-1]


def downloads_allowed(download: bool) -> bool:
    """Whether a loader may touch the network: the caller allows it and the environment does not veto it."""
    return download and os.environ.get(OFFLINE_ENV, "") in ("", "0")


def ensure_files(
    root: str | os.PathLike[str],
    name: str,
    files: Sequence[str],
    remotes: Sequence[Remote],
    download: bool = True,
) -> Path:
    """Return ``root`` as a :class:`Path` once every path in ``files`` (relative to it) exists.

    Missing files are fetched from ``remotes`` if :func:`downloads_allowed`; a single-file remote whose
    target already exists is not fetched again. Raises :class:`DataMissingError` when the files are
    still missing afterwards.
    """
    root = Path(root).expanduser()
    missing = _missing(root, files)
    if not missing:
        return root
    if not downloads_allowed(download):
        reason = f"downloads disabled (download=False or {OFFLINE_ENV} set)"
        raise _error(name, missing, root, remotes, reason)
    for remote in remotes:
        if not remote.unpack and (root / remote.subdir / remote.filename).exists():
            continue
        try:
            _fetch(root, remote)
        except (OSError, http.client.HTTPException, tarfile.TarError, zipfile.BadZipFile, ValueError) as e:
            raise _error(name, missing, root, remotes, f"download of {remote.url} failed: {e}") from e
    missing = _missing(root, files)
    if missing:
        raise _error(name, missing, root, remotes, "the download did not contain them")
    return root


def _missing(root: Path, files: Sequence[str]) -> list[str]:
    return [f for f in files if not (root / f).exists()]


def _error(
    name: str, missing: list[str], root: Path, remotes: Sequence[Remote], reason: str
) -> DataMissingError:
    how = "; ".join(
        f"download {r.url} and {'unpack it into' if r.unpack else 'put it in'} {root / r.subdir}"
        for r in remotes
    )
    message = f"{name} not found: missing {', '.join(missing)} under {root} ({reason}). Fetch by hand: {how}"
    return DataMissingError(" ".join(message.splitlines()))


def _fetch(root: Path, remote: Remote) -> None:
    """Download ``remote`` into ``root/remote.subdir``; every file appears there complete or not at all."""
    dest = root / remote.subdir
    dest.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{remote.filename}.", suffix=".part", dir=dest)
    tmp = Path(tmp_name)
    try:
        h = hashlib.md5(usedforsecurity=False)
        request = urllib.request.Request(remote.url, headers={"User-Agent": "mlrsnet"})
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(request, timeout=_TIMEOUT_S) as response:
            # Logged once connected, so that an offline run prints nothing but its one-line error.
            _log.info("downloading %s to %s", remote.url, dest)
            while chunk := response.read(_CHUNK):
                h.update(chunk)
                out.write(chunk)
        if remote.md5 is not None and h.hexdigest() != remote.md5:
            raise ValueError(f"MD5 mismatch: got {h.hexdigest()}, expected {remote.md5}")
        if remote.unpack:
            _unpack(tmp, dest)
        else:
            os.chmod(tmp, 0o644)  # mkstemp creates 0600; a shared data directory must stay readable
            os.replace(tmp, dest / remote.filename)
    finally:
        tmp.unlink(missing_ok=True)


def _unpack(archive: Path, dest: Path) -> None:
    """Extract into a scratch directory inside ``dest``, then move each file into place atomically."""
    scratch = Path(tempfile.mkdtemp(prefix=".unpack.", dir=dest))
    try:
        if zipfile.is_zipfile(archive):
            with zipfile.ZipFile(archive) as z:
                z.extractall(scratch)
        else:
            with tarfile.open(archive, "r:*") as t:
                t.extractall(scratch, filter="data")
        for dirpath, _, filenames in os.walk(scratch):
            for f in filenames:
                src = Path(dirpath) / f
                target = dest / src.relative_to(scratch)
                target.parent.mkdir(parents=True, exist_ok=True)
                os.replace(src, target)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
