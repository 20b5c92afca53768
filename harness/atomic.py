"""Atomic file writes: a reader sees the old file or the new one, never a torn one.

One implementation for every file the harness writes whole (grading records and exports, HTML reports, capture
bundles). The temporary name, ``.<name>.<pid>.<random>.tmp`` beside the target, names its writer: after a crash
``harness.grade.store.ResultStore.prepare`` sweeps the temporary files whose writer is gone (``orphaned``), and
only those.
"""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Iterable
from pathlib import Path

_TEMP_NAME = re.compile(r"^\..+\.(\d+)\.[0-9a-f]{8}\.tmp$")


def atomic_write_text(path: str | os.PathLike[str], text: str | Iterable[str], *, durable: bool = True) -> Path:
    """Write ``text`` to ``path`` so that readers see the old file or the new one, never a torn one.

    ``text`` may come in pieces (an iterable of str), written as they are made: a large file (a capture bundle)
    then never sits whole in memory. ``durable=False`` skips the fsyncs: for files derived from the records, which a
    rerun rebuilds anyway.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    # Not mkstemp: its 0600 mode would make a report others cannot read; open() honours the umask like any file.
    tmp = target.parent / f".{target.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp"
    try:
        with open(tmp, "x", encoding="utf-8", newline="\n") as fh:
            for piece in [text] if isinstance(text, str) else text:
                fh.write(piece)
            if durable:
                fh.flush()
                os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    if durable:
        _fsync_dir(target.parent)
    return target


def temp_writer(path: str | os.PathLike[str]) -> int | None:
    """The pid that wrote a temporary file of atomic_write_text, or None for a name it did not make."""
    match = _TEMP_NAME.match(Path(path).name)
    return int(match.group(1)) if match else None


def pid_alive(pid: int) -> bool:
    """Whether a process with this pid runs on this host (a reused pid counts as alive: its file is kept)."""
    if os.name == "nt":  # os.kill there terminates the process: never probe, never call a writer gone
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # EPERM: alive, someone else's
        return True
    return True


def orphaned(path: str | os.PathLike[str]) -> bool:
    """A temporary file of atomic_write_text whose writer no longer runs here: safe to delete.

    Another process's file is kept while that process lives (deleting it fails its rename); so is a name this
    module did not make.
    """
    pid = temp_writer(path)
    return pid is not None and pid != os.getpid() and not pid_alive(pid)


def _fsync_dir(directory: Path) -> None:
    # The rename is durable only once the directory entry is on disk; not every platform lets us open a dir.
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
