"""Requests that arrive together run together: one worker thread takes the first waiting job,
waits a short window for more (up to ``max_batch``), runs the jobs that share a key as one batch
and answers each job's future. The queue is bounded, so an overloaded service refuses at once
(``QueueFullError``) instead of letting latency grow without limit. Nothing here knows about HTTP or
models: ``run`` is any function from a key and a list of payloads to a list of answers."""

from __future__ import annotations

import contextlib
import queue
import threading
import time
from collections.abc import Callable, Hashable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

P = TypeVar("P")
R = TypeVar("R")


class QueueFullError(Exception):
    """The queue holds ``max_queue`` jobs already."""


class ClosedError(Exception):
    """The batcher was stopped before the job ran."""


@dataclass
class _Job(Generic[P, R]):
    key: Hashable
    payload: P
    future: Future[R] = field(default_factory=Future)


class Batcher(Generic[P, R]):
    """``submit(key, payload)`` -> a future answered by ``run(key, payloads)[i]``."""

    def __init__(self, run: Callable[[Any, list[P]], list[R]], *, max_batch: int = 4, max_queue: int = 32,
                 window_s: float = 0.01) -> None:
        if max_batch < 1 or max_queue < 1 or window_s < 0:
            raise ValueError("max_batch and max_queue must be >= 1 and window_s >= 0")
        self._run = run
        self.max_batch, self.max_queue, self.window_s = max_batch, max_queue, window_s
        self._queue: queue.Queue[_Job[P, R] | None] = queue.Queue(maxsize=max_queue)
        self._carried: list[_Job[P, R]] = []  # taken from the queue but not in the last batch (another key)
        self._running = 0
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="mask2former-batcher", daemon=True)
        self._thread.start()

    @property
    def depth(self) -> int:
        """Jobs waiting or running."""
        with self._lock:
            return self._queue.qsize() + len(self._carried) + self._running

    @property
    def full(self) -> bool:
        """No room for another job: callers can refuse before doing any work for it."""
        return self._queue.full()

    def submit(self, key: Hashable, payload: P) -> Future[R]:
        if self._stopped.is_set():
            raise ClosedError("the service is stopping")
        job: _Job[P, R] = _Job(key, payload)
        try:
            self._queue.put_nowait(job)
        except queue.Full:
            raise QueueFullError(f"{self.max_queue} requests are waiting already") from None
        return job.future

    def close(self, timeout: float = 10.0) -> None:
        """Stop taking jobs, let the running batch finish, fail the jobs still waiting."""
        self._stopped.set()
        with contextlib.suppress(queue.Full):  # the worker also stops on the event
            self._queue.put_nowait(None)
        self._thread.join(timeout)
        for job in self._drain():
            job.future.set_exception(ClosedError("the service stopped before this request ran"))

    def _drain(self) -> list[_Job[P, R]]:
        jobs, self._carried = self._carried, []
        while True:
            try:
                job = self._queue.get_nowait()
            except queue.Empty:
                return jobs
            if job is not None:
                jobs.append(job)

    def _take(self) -> list[_Job[P, R]]:
        """The oldest job and, within the window, more jobs until ``max_batch`` share its key."""
        jobs = self._carried
        self._carried = []
        if not jobs:
            first = self._queue.get()
            if first is None:
                return []
            jobs = [first]
        key = jobs[0].key
        deadline = time.monotonic() + self.window_s
        while sum(j.key == key for j in jobs) < self.max_batch and not self._stopped.is_set():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            try:
                job = self._queue.get(timeout=remaining)
            except queue.Empty:
                break
            if job is None:
                break
            jobs.append(job)
        batch: list[_Job[P, R]] = []
        rest: list[_Job[P, R]] = []
        for job in jobs:
            (batch if job.key == key and len(batch) < self.max_batch else rest).append(job)
        with self._lock:
            self._carried = rest
            self._running = len(batch)
        return batch

    def _loop(self) -> None:
        while not self._stopped.is_set():
            batch = self._take()
            if not batch:
                continue
            live = [job for job in batch if job.future.set_running_or_notify_cancel()]
            try:
                if live:
                    answers = self._run(live[0].key, [job.payload for job in live])
                    for job, answer in zip(live, answers, strict=True):
                        job.future.set_result(answer)
            except BaseException as error:  # answered to each caller; the worker keeps serving
                for job in live:
                    if not job.future.done():
                        job.future.set_exception(error)
            finally:
                with self._lock:
                    self._running = 0
