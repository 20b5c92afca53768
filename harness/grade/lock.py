"""One grader per output folder: ``OUT/.grade.lock``, held with ``flock(2)`` for the whole run.

Why flock rather than a lock file created with O_CREAT|O_EXCL: the kernel drops a flock when its holder ends, however
it ends (``kill -9``, the OOM killer), so a lock that outlived its grader is never mistaken for a live one. An O_EXCL
file survives its creator, and judging it stale means trusting a pid: pids are reused, mean nothing on another host
sharing the folder or in another pid namespace, and two graders that both find it stale race to replace it.

The file stays when the run ends (unlinking a flock file races a grader that opened it a moment before and would then
lock a file nobody else sees). Its content names the holder (pid, host, start time) for the message a refused grader
prints; the holder clears it when it ends normally, so a grader that gets the lock and still finds a holder named
there has taken over from one that was killed or crashed, and says so.
"""

from __future__ import annotations

import errno
import json
import os
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.errors import ConfigError
from harness.grade.attempt import utc_now

try:
    import fcntl
except ImportError:  # Windows: no flock; grading runs unlocked, with a warning
    fcntl = None  # type: ignore[assignment]

LOCK_NAME = ".grade.lock"
# The filesystem cannot lock (some network or FUSE mounts): grade anyway, unprotected, and say so.
_NO_LOCKING = {errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL}
# A refused grader may read the file between the holder's flock and its write: look again briefly.
_EMPTY_READ_RETRIES, _EMPTY_READ_PAUSE_S = 10, 0.02

Warn = Callable[[str], None]


class FolderLocked(ConfigError):
    """Another grader holds the folder's lock (exit 2: nothing was graded or touched)."""


@dataclass
class GradeLock:
    path: Path
    fd: int
    locked: bool  # False where the platform or filesystem cannot lock: the run is unprotected
    previous: dict[str, Any] | None = None  # holder named by a grader that ended without releasing


def holder_info() -> dict[str, Any]:
    return {"pid": os.getpid(), "host": socket.gethostname(), "started_at": utc_now(),
            "command": "streamconform grade"}


def describe(holder: dict[str, Any] | None) -> str:
    """e.g. "pid 4242 on host lab-3, since 2024-05-01T09:30:00.000Z"."""
    if not holder:
        return "a grader that has not written its name yet"
    return (f"pid {holder.get('pid', '?')} on host {holder.get('host', '?')}, "
            f"since {holder.get('started_at', '?')}")


def _read_holder(fd: int) -> dict[str, Any] | None:
    try:
        data = os.pread(fd, 4096, 0)
        doc = json.loads(data.decode("utf-8")) if data.strip() else None
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) else None


def _wait_for_holder(fd: int) -> dict[str, Any] | None:
    for _ in range(_EMPTY_READ_RETRIES):
        holder = _read_holder(fd)
        if holder:
            return holder
        time.sleep(_EMPTY_READ_PAUSE_S)
    return None


def _write_holder(fd: int) -> None:
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(holder_info()) + "\n").encode("utf-8"), 0)
    except OSError:  # a full disk: the flock alone excludes other graders, the name only improves their message
        pass


def acquire(out: Path) -> GradeLock:
    """Lock ``out`` for this grader, or raise FolderLocked naming the grader that holds it."""
    out.mkdir(parents=True, exist_ok=True)
    path = out / LOCK_NAME
    try:
        # os.open: not inherited by child processes (O_CLOEXEC), so nothing but this process can keep it locked.
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise ConfigError(f"cannot create the lock file {path}: {exc.strerror or exc}") from exc
    try:
        locked = _try_flock(fd, path)
        previous = _read_holder(fd) if locked else None
        _write_holder(fd)
    except BaseException:
        os.close(fd)
        raise
    return GradeLock(path, fd, locked, previous)


def _try_flock(fd: int, path: Path) -> bool:
    if fcntl is None:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = _wait_for_holder(fd)
        raise FolderLocked(f"{path.parent} is being graded by another streamconform grade: {describe(holder)} "
                           f"(lock file {path}). Wait for it to finish, or stop it and rerun this command: "
                           "it resumes where that one stopped.") from None
    except OSError as exc:
        if exc.errno in _NO_LOCKING:
            return False
        raise
    return True


def release(lock: GradeLock) -> None:
    # Cleared before the unlock: the next grader then finds no holder named and knows this run ended normally.
    try:
        os.ftruncate(lock.fd, 0)
    except OSError:
        pass
    os.close(lock.fd)  # closing the descriptor releases the flock


@contextmanager
def hold(out: Path, warn: Warn) -> Iterator[GradeLock]:
    """The folder's lock for the duration of the block; a takeover or an unlocked run is reported through ``warn``."""
    lock = acquire(out)
    try:
        if not lock.locked:
            warn(f"cannot lock {out} on this platform or filesystem: make sure no other grader uses this folder "
                 "at the same time")
        elif lock.previous:
            warn(f"took over the lock on {out} from {describe(lock.previous)}: that grader ended without "
                 "releasing it (killed or crashed); its unfinished submissions are graded now")
        yield lock
    finally:
        release(lock)
