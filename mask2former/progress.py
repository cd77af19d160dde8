"""Progress that reads well wherever it goes: a live bar on a terminal, plain lines in a log.

Redirected to a file, a progress bar writes a carriage-return frame per step, so a 300-iteration
training log becomes megabytes of repeated bars. When stderr is not a terminal, progress is one
line every ``interval`` seconds or every tenth of the run instead (through the ``mask2former``
logger, so ``-q`` silences it like any other INFO line).
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Iterable, Iterator
from typing import Any, TextIO

logger = logging.getLogger("mask2former")


def _is_terminal(stream: TextIO) -> bool:
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty and isatty())
    except ValueError:  # a closed stream
        return False


class Progress:
    """``update`` / ``set_postfix`` / ``write`` / ``close``, as tqdm's bar, whichever way it shows."""

    def __init__(self, *, total: int | None, desc: str, unit: str = "it", initial: int = 0,
                 interval: float = 30.0, stream: TextIO | None = None) -> None:
        self.total, self.desc, self.unit, self.interval = total, desc, unit, interval
        self.count = initial
        self.postfix: dict[str, Any] = {}
        self._bar: Any = None
        self._start = self._last_time = time.monotonic()
        self._start_count = initial
        self._last_tenth = self._tenth(initial)
        stream = stream if stream is not None else sys.stderr
        if _is_terminal(stream):
            from tqdm import tqdm

            self._bar = tqdm(total=total, initial=initial, desc=desc, unit=unit, dynamic_ncols=True, file=stream)

    def _tenth(self, count: int) -> int:
        return count * 10 // self.total if self.total else 0

    def update(self, n: int = 1) -> None:
        self.count += n
        if self._bar is not None:
            self._bar.update(n)
            return
        now = time.monotonic()
        tenth = self._tenth(self.count)
        if now - self._last_time >= self.interval or tenth > self._last_tenth or self.count == self.total:
            self._last_time, self._last_tenth = now, tenth
            logger.info(self.line(now))

    def line(self, now: float | None = None) -> str:
        """``train: 120/300 it (40%), 2.10 it/s, 1m25s left, loss=12.3`` (what a log gets)."""
        elapsed = (now if now is not None else time.monotonic()) - self._start
        done = self.count - self._start_count
        rate = done / elapsed if elapsed > 0 else 0.0
        parts = [f"{self.desc}: {self.count}" + (f"/{self.total}" if self.total else "") + f" {self.unit}"]
        if self.total:
            parts[0] += f" ({100 * self.count / self.total:.0f}%)"
        parts.append(f"{rate:.2f} {self.unit}/s")
        if self.total and rate > 0:
            left = int((self.total - self.count) / rate)
            parts.append(f"{left // 60}m{left % 60:02d}s left")
        parts += [f"{k}={v}" for k, v in self.postfix.items()]
        return ", ".join(parts)

    def set_postfix(self, **values: Any) -> None:
        self.postfix = values
        if self._bar is not None:
            self._bar.set_postfix(**values)

    def write(self, message: str) -> None:
        """A message on its own line, without breaking a live bar."""
        if self._bar is not None:
            self._bar.write(message)
        else:
            logger.info(message)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def track(items: Iterable[Any], *, total: int | None, desc: str, unit: str = "it") -> Iterator[Any]:
    """``items`` passed through, with progress shown as ``Progress`` shows it."""
    with Progress(total=total, desc=desc, unit=unit) as progress:
        for item in items:
            yield item
            progress.update()
