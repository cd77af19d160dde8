"""The batch sampler makes runs reproducible across resumes and process counts."""

from __future__ import annotations

from mask2former.data.loader import IterationBatchSampler


def _take(sampler, n):
    it = iter(sampler)
    return [next(it) for _ in range(n)]


def test_resume_sees_the_same_samples():
    full = _take(IterationBatchSampler(7, batch_size=4, seed=3), 5)
    resumed = _take(IterationBatchSampler(7, batch_size=4, seed=3, start_iter=2), 3)
    assert full[2:] == resumed


def test_processes_and_accumulation_partition_the_global_batch():
    single = _take(IterationBatchSampler(9, batch_size=4, seed=1), 6)
    for world, accum in ((2, 1), (1, 2), (2, 2), (4, 1)):
        parts = [_take(IterationBatchSampler(9, batch_size=4, seed=1, rank=r, world=world, grad_accum=accum),
                       6 * accum) for r in range(world)]
        for it in range(6):
            got = sorted(x for r in range(world) for a in range(accum) for x in parts[r][it * accum + a])
            assert got == sorted(single[it]), (world, accum, it)


def test_epochs_are_permutations():
    batches = _take(IterationBatchSampler(6, batch_size=3, seed=0), 4)
    first, second = [i for b in batches[:2] for i, _ in b], [i for b in batches[2:] for i, _ in b]
    assert sorted(first) == sorted(second) == list(range(6))
    assert first != second  # a fresh permutation per epoch
