"""One writer per output folder: two runs writing into the same folder would interleave their
files and lose one run's index or checkpoints without a word."""

from __future__ import annotations

import os
from pathlib import Path
from types import TracebackType

from mask2former.errors import Mask2FormerError

LOCK_NAME = ".mask2former.lock"


class FolderBusyError(Mask2FormerError):
    """Another run holds the folder's lock."""


class FolderLock:
    """An exclusive, non-blocking lock on ``folder`` (created if needed), held until ``release``
    or the end of a ``with`` block. It is an ``flock`` on a file inside the folder, so the
    operating system releases it when the process dies: a killed run never leaves it locked.
    ``what`` names the run in the error the second writer gets. Without ``flock`` (Windows) it
    does nothing."""

    def __init__(self, folder: str | os.PathLike, what: str) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self._fd: int | None = None
        try:
            import fcntl
        except ImportError:
            return
        fd = os.open(self.folder / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise FolderBusyError(f"{self.folder}: another {what} is writing into this folder (it holds "
                                  f"{LOCK_NAME}); wait for it to finish or choose another output folder") from None
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)  # closing the descriptor releases the lock

    def __enter__(self) -> FolderLock:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.release()


def folder_lock(folder: str | os.PathLike, what: str) -> FolderLock:
    """``with folder_lock(out, "training run"): ...`` holds the folder for the block."""
    return FolderLock(folder, what)
