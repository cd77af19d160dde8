"""Seeded, deterministic byte mutations of a valid file, for fuzzing any reader of binary files.

    from tests.fuzz.mutate import mutations
    for data in mutations(valid_png_bytes, seed=0, count=200):
        ...  # feed ``data`` to the reader; it must fail with the project's error or succeed

The same ``(data, seed, count)`` always yields the same mutants, so a failure is reproduced by
its seed and index alone. Each mutant applies 1-4 of: bit flip, byte overwrite with an
interesting value (0x00, 0xff, 0x7f, 0x80, 0x01, 0xfe), truncation, insertion of random or
interesting bytes, deletion of a span, duplication of a chunk, swap of two chunks. Only the
standard library is used, so any test (images, checkpoints, archives) can reuse it.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator

INTERESTING = (0x00, 0xFF, 0x7F, 0x80, 0x01, 0xFE)

__all__ = ["INTERESTING", "mutate", "mutations"]


def mutations(data: bytes, seed: int, count: int) -> Iterator[bytes]:
    """``count`` mutants of ``data``, reproducible from ``seed`` (mutant ``i`` depends only on
    ``data``, ``seed`` and ``i``)."""
    for i in range(count):
        yield mutate(data, random.Random(f"{seed}:{i}"))


def mutate(data: bytes, rng: random.Random) -> bytes:
    """One mutant of ``data``: 1-4 mutation operators drawn from ``rng``, applied in turn."""
    out = bytearray(data)
    for _ in range(rng.choice((1, 1, 1, 2, 2, 3, 4))):
        rng.choice(_OPERATORS)(out, rng)
    return bytes(out)


def _position(out: bytearray, rng: random.Random) -> int:
    """An offset, biased towards the first 64 bytes where headers (sizes, modes) live."""
    if not out:
        return 0
    if rng.random() < 0.5:
        return rng.randrange(min(len(out), 64))
    return rng.randrange(len(out))


def _span(out: bytearray, rng: random.Random) -> tuple[int, int]:
    start = _position(out, rng)
    return start, min(len(out), start + rng.choice((1, 2, 4, 8, 16, 64, 256)))


def _bit_flip(out: bytearray, rng: random.Random) -> None:
    if out:
        out[_position(out, rng)] ^= 1 << rng.randrange(8)


def _interesting(out: bytearray, rng: random.Random) -> None:
    if out:
        start = _position(out, rng)
        for k in range(start, min(len(out), start + rng.choice((1, 2, 4)))):
            out[k] = rng.choice(INTERESTING)


def _truncate(out: bytearray, rng: random.Random) -> None:
    if out:
        del out[rng.randrange(len(out)):]


def _insert(out: bytearray, rng: random.Random) -> None:
    n = rng.choice((1, 2, 4, 16, 100))
    random_bytes = rng.random() < 0.5
    chunk = bytes(rng.randrange(256) for _ in range(n)) if random_bytes else bytes([rng.choice(INTERESTING)]) * n
    at = _position(out, rng)
    out[at:at] = chunk


def _delete(out: bytearray, rng: random.Random) -> None:
    start, end = _span(out, rng)
    del out[start:end]


def _duplicate(out: bytearray, rng: random.Random) -> None:
    start, end = _span(out, rng)
    at = _position(out, rng)
    out[at:at] = out[start:end]


def _swap(out: bytearray, rng: random.Random) -> None:
    a0, a1 = _span(out, rng)
    b0, b1 = _span(out, rng)
    if a1 <= b0:
        out[a0:b1] = out[b0:b1] + out[a1:b0] + out[a0:a1]
    elif b1 <= a0:
        out[b0:a1] = out[a0:a1] + out[b1:a0] + out[b0:b1]


_OPERATORS: tuple[Callable[[bytearray, random.Random], None], ...] = (
    _bit_flip, _bit_flip, _interesting, _interesting, _truncate, _insert, _delete, _duplicate, _swap)
