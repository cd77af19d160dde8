"""The batcher: jobs that arrive together share a call, keys never mix, the queue is bounded,
a failing call answers its own jobs and the worker goes on."""

from __future__ import annotations

import threading
import time

import pytest

from mask2former.serve.batcher import Batcher, ClosedError, QueueFullError


def test_jobs_within_the_window_share_one_call_and_keys_do_not_mix():
    calls: list[tuple[str, list[int]]] = []

    def run(key, payloads):
        calls.append((key, list(payloads)))
        return [(key, p * 10) for p in payloads]

    batcher = Batcher(run, max_batch=3, max_queue=16, window_s=0.2)
    try:
        futures = [batcher.submit("a" if i % 2 == 0 else "b", i) for i in range(6)]
        answers = [f.result(timeout=5) for f in futures]
    finally:
        batcher.close()
    assert answers == [("a" if i % 2 == 0 else "b", i * 10) for i in range(6)]
    assert sorted(calls) == [("a", [0, 2, 4]), ("b", [1, 3, 5])]


def test_max_batch_caps_a_call():
    sizes: list[int] = []
    batcher = Batcher(lambda key, p: (sizes.append(len(p)), p)[1], max_batch=2, max_queue=16, window_s=0.2)
    try:
        for f in [batcher.submit("k", i) for i in range(5)]:
            f.result(timeout=5)
    finally:
        batcher.close()
    assert max(sizes) == 2 and sum(sizes) == 5


def test_a_full_queue_refuses_at_once_and_drains():
    release = threading.Event()

    def run(key, payloads):
        release.wait(5)
        return payloads

    batcher = Batcher(run, max_batch=1, max_queue=2, window_s=0.0)
    try:
        running = batcher.submit("k", 0)
        deadline = time.monotonic() + 5
        while (batcher.depth != 1 or batcher._queue.qsize()) and time.monotonic() < deadline:  # the worker took it
            time.sleep(0.01)
        waiting = [batcher.submit("k", 1), batcher.submit("k", 2)]
        with pytest.raises(QueueFullError, match="2 requests are waiting"):
            batcher.submit("k", 3)
        assert batcher.depth == 3
        release.set()
        assert [f.result(timeout=5) for f in [running, *waiting]] == [0, 1, 2]
        assert batcher.submit("k", 4).result(timeout=5) == 4
    finally:
        release.set()
        batcher.close()


def test_a_failing_call_fails_its_jobs_only_and_the_worker_continues():
    def run(key, payloads):
        if key == "bad":
            raise RuntimeError("model broke")
        return payloads

    batcher = Batcher(run, max_batch=4, max_queue=8, window_s=0.05)
    try:
        bad, good = batcher.submit("bad", 1), batcher.submit("good", 2)
        with pytest.raises(RuntimeError, match="model broke"):
            bad.result(timeout=5)
        assert good.result(timeout=5) == 2
        assert batcher.submit("good", 3).result(timeout=5) == 3
    finally:
        batcher.close()


def test_close_fails_waiting_jobs_and_refuses_new_ones():
    release = threading.Event()
    batcher = Batcher(lambda key, p: (release.wait(5), p)[1], max_batch=1, max_queue=4, window_s=0.0)
    first = batcher.submit("k", 0)
    time.sleep(0.1)
    second = batcher.submit("k", 1)
    closer = threading.Thread(target=batcher.close)
    closer.start()
    time.sleep(0.1)
    release.set()
    closer.join(5)
    assert first.result(timeout=5) == 0
    with pytest.raises(ClosedError):
        second.result(timeout=5)
    with pytest.raises(ClosedError):
        batcher.submit("k", 2)
