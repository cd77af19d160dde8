"""What a user-given path is, without the OS errors ``Path.exists`` / ``is_file`` let escape.

``Path.exists()`` raises for a name longer than the file system allows (``ENAMETOOLONG``) and
``expanduser`` for an unknown ``~user``; a FIFO or device named where a file should be would block
or stream forever once opened. Readers ask ``path_problem`` first and report its answer with the
file name.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Callable
from pathlib import Path

from mask2former.errors import DatasetError

NOT_FOUND = "not found"


def path_problem(path: str | os.PathLike, *, expect: str = "file") -> str | None:
    """None if ``path`` is an existing regular file (``expect="file"``) or directory
    (``expect="dir"``), else why not: ``"not found"``, ``"is a directory"``, ``"is not a
    directory"``, ``"is not a regular file (...)"`` or ``"unusable path (...)"``."""
    try:
        mode = os.stat(path).st_mode
    except (FileNotFoundError, NotADirectoryError):
        return NOT_FOUND
    except PermissionError:
        return "cannot be read (permission denied)"
    except OSError as e:
        return f"unusable path ({'name too long' if e.errno == errno.ENAMETOOLONG else e.strerror or e})"
    except ValueError:
        return "unusable path (it holds a NUL character)"
    if expect == "dir":
        return None if stat.S_ISDIR(mode) else "is not a directory"
    if stat.S_ISDIR(mode):
        return "is a directory"
    if not stat.S_ISREG(mode):
        return "is not a regular file (a device, pipe or socket)"
    return None


def is_file(path: str | os.PathLike) -> bool:
    """``Path.is_file`` that answers False instead of raising for unusable names."""
    return path_problem(path) is None


def is_dir(path: str | os.PathLike) -> bool:
    """``Path.is_dir`` that answers False instead of raising for unusable names."""
    return path_problem(path, expect="dir") is None


def expand_user(path: str | os.PathLike) -> Path:
    """``Path(path).expanduser()``, leaving ``~name`` as it is when that user does not exist
    (``expanduser`` raises RuntimeError there); the path is then reported as not found."""
    try:
        return Path(path).expanduser()
    except RuntimeError:
        return Path(path)


MAX_SCANNED_ENTRIES = 5_000_000  # a dataset folder holds far fewer; "/" or a home folder holds more


def scan_files(folder: Path, keep: Callable[[str], bool], *, limit: int | None = None) -> list[Path]:
    """Files below ``folder`` (recursively, sorted) whose name ``keep`` accepts. A folder holding
    more than ``limit`` (``MAX_SCANNED_ENTRIES``) entries below it is an error naming it: a path cut
    short to ``/`` or to a home folder would otherwise walk the whole disk before failing."""
    limit = MAX_SCANNED_ENTRIES if limit is None else limit
    found: list[Path] = []
    seen = 0
    for root, dirs, names in os.walk(folder):
        seen += len(dirs) + len(names)
        if seen > limit:
            raise DatasetError(folder, f"holds more than {limit:,} files and folders below it; is this the "
                                       "dataset's own folder?")
        dirs.sort()
        found.extend(Path(root) / name for name in names if keep(name))
    return sorted(found)
