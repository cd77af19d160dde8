"""Writing files so that a crash, a kill or a full disk never leaves a half-written one in place.

Every file whose loss would hurt (checkpoints, weights, prediction indexes, metrics) is written to a
temporary file beside its destination, flushed to disk and renamed over it; ``remove_stale_temp_files``
clears what a killed write left, for the one process that holds the folder (see ``folder_lock``).
"""

from __future__ import annotations

import errno
import json
import math
import os
import re
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO


def atomic_write(path: str | os.PathLike, write: Callable[[BinaryIO], object]) -> Path:
    """Run ``write(file)`` on a temporary file beside ``path``, flush it to disk, then rename it
    over ``path``: a crash or a full disk mid-write leaves the previous file intact.

    The file gets the mode the user's umask gives a new file (not mkstemp's 0600); writers get a
    Python file object so that a full disk surfaces as ``OSError(ENOSPC)`` naming ``path``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.{secrets.token_hex(4)}.tmp"
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        _fsync_folder(path.parent)
    except Exception as e:
        cause = _os_error_in_chain(e)
        if cause is not None and cause.errno in (errno.ENOSPC, errno.EDQUOT):
            raise OSError(cause.errno, "No space left on device (the previous file, if any, is unchanged)",
                          str(path)) from None
        if isinstance(e, OSError) and e.errno is not None and e.filename is not None:
            raise OSError(e.errno, e.strerror, str(path)) from None  # name the file the user knows, not the temp
        raise
    finally:
        tmp.unlink(missing_ok=True)
    return path


def _os_error_in_chain(error: BaseException) -> OSError | None:
    """The operating system's error behind ``error``: torch's writer reports a full disk as a
    RuntimeError raised while cleaning up after the real ``OSError(ENOSPC)``."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        if isinstance(current, OSError) and current.errno is not None:
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


def _fsync_folder(folder: Path) -> None:
    """Make the rename itself durable (a power cut after ``os.replace`` could otherwise undo it)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


_TEMP_NAME = re.compile(r"^\..+\.[0-9a-z_]+\.tmp$")


def remove_stale_temp_files(folder: str | os.PathLike) -> int:
    """Delete the temporary files a killed ``atomic_write`` left in ``folder``; returns how many.
    Call only while no other writer uses the folder (training holds its output folder's lock)."""
    removed = 0
    for tmp in Path(folder).glob(".*.tmp"):
        if _TEMP_NAME.match(tmp.name) and tmp.is_file():
            tmp.unlink(missing_ok=True)
            removed += 1
    return removed


def json_safe(value: Any) -> Any:
    """``value`` with every NaN / infinite float as None: JSON has no NaN, and a score that does not
    exist (a class absent from a volume, COCO's "no such objects") is null to every JSON reader."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    return value


def write_json_atomic(path: str | os.PathLike, data: Any) -> Path:
    """JSON written atomically (a reader, or a run that dies half-way, sees the old file or the new),
    non-finite numbers as null (``json_safe``)."""
    return atomic_write(path, lambda f: f.write(json.dumps(json_safe(data), allow_nan=False).encode("utf-8")))
