"""Atomic file writes: a reader sees the old file or the new one, never a torn one.

One implementation for every file the harness writes whole (grading records and exports, HTML reports, capture
bundles). The temporary name, ``.<name>.<pid>.<random>.tmp`` beside the target, is what
``harness.grade.store.ResultStore.prepare`` sweeps after a crash.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path


def atomic_write_text(path: str | os.PathLike[str], text: str, *, durable: bool = True) -> Path:
    """Write ``text`` to ``path`` so that readers see the old file or the new one, never a torn one.

    ``durable=False`` skips the fsyncs: for files derived from the records, which a rerun rebuilds anyway.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    # Not mkstemp: its 0600 mode would make a report others cannot read; open() honours the umask like any file.
    tmp = target.parent / f".{target.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp"
    try:
        with open(tmp, "x", encoding="utf-8", newline="\n") as fh:
            fh.write(text)
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
