"""Budgets and the contract of the fuzz suite.

Contract: every input gives either a valid result or the project's own error (a
``Mask2FormerError``), each example within ``CPU_SECONDS`` of CPU time, ``WALL_SECONDS`` of wall
time (a watchdog that also catches hangs) and ``PEAK_BYTES`` of Python-visible memory (tracemalloc:
Python objects and numpy arrays; Pillow's and pycocotools' C buffers are invisible to it, which is
why the suite also lowers the image pixel limit to ``FUZZ_MAX_PIXELS``, the bound that sizes them).

Two budgets: the quick one (default, deterministic: ``derandomize=True`` and fixed seeds, about
20 s for the whole suite, run by ``make test``) and the long one, ``MASK2FORMER_FUZZ=long``
(thousands of examples per test, ``make fuzz``). No hypothesis database is written (``database=None``).
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
import tracemalloc
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, settings

from mask2former.data import image as image_module
from mask2former.errors import Mask2FormerError

LONG = os.environ.get("MASK2FORMER_FUZZ", "").strip().lower() == "long"

CPU_SECONDS = 2.0
WALL_SECONDS = 20.0  # only a hang detector: the machine is shared, so wall time is noisy
PEAK_BYTES = 200 * 2**20
FUZZ_MAX_PIXELS = 2**22  # 4.2 M pixels: a mutated header cannot make Pillow allocate more than ~17 MB

_COMMON = dict(database=None, deadline=None, print_blob=True,
               suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                      HealthCheck.function_scoped_fixture, HealthCheck.filter_too_much])
settings.register_profile("mask2former-fuzz-quick", derandomize=True, **_COMMON)
settings.register_profile("mask2former-fuzz-long", derandomize=False, **_COMMON)
PROFILE = settings.get_profile("mask2former-fuzz-long" if LONG else "mask2former-fuzz-quick")


def examples(quick: int, long: int) -> int:
    """The number of examples of a fuzz loop under the active budget."""
    return long if LONG else quick


def fuzz_settings(quick: int, long: int) -> settings:
    """Hypothesis settings of the active profile with ``quick`` / ``long`` examples (applied per
    test, so other hypothesis tests of the suite keep their own settings)."""
    return settings(PROFILE, max_examples=examples(quick, long))


class _WallClockError(Exception):
    pass


@contextlib.contextmanager
def _wall_clock_limit(seconds: float) -> Iterator[None]:
    def expire(signum: int, frame: Any) -> None:
        raise _WallClockError(f"still running after {seconds:.0f} s of wall time (a hang?)")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def within_contract(run: Callable[[], Any], what: str = "input") -> Any:
    """``run()``'s result, or None if it raised the project's own error; any other exception, or
    exceeding the CPU time, wall time or memory bound, fails the test naming ``what``."""
    tracemalloc.start()
    cpu = time.process_time()
    error: Mask2FormerError | None = None
    result = None
    try:
        with _wall_clock_limit(WALL_SECONDS):
            result = run()
    except Mask2FormerError as e:
        error = e
    except _WallClockError as e:
        pytest.fail(f"{what}: {e}")
    finally:
        spent = time.process_time() - cpu
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    assert spent < CPU_SECONDS, f"{what}: took {spent:.2f} s of CPU time (bound {CPU_SECONDS} s)"
    assert peak < PEAK_BYTES, f"{what}: peak {peak / 2**20:.0f} MB traced (bound {PEAK_BYTES / 2**20:.0f} MB)"
    if error is not None:
        assert str(error).strip(), f"{what}: an error without a message"
        return None
    return result


@pytest.fixture(autouse=True)
def _fuzz_pixel_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every fuzz test runs with a 4.2 M pixel limit (see the module docstring)."""
    monkeypatch.setattr(image_module, "_max_pixels", FUZZ_MAX_PIXELS)


@pytest.fixture(scope="session")
def world(tmp_path_factory: pytest.TempPathFactory):
    """The tiny on-disk dataset the JSON / YAML fuzzers point into (``tests.fuzz.world``)."""
    from tests.fuzz.world import build_world

    return build_world(tmp_path_factory.mktemp("fuzz_world"))
