from __future__ import annotations

from batchjobs.sizing import ChunkSizer


def test_sizer__initial_size_is_clamped_to_the_bounds() -> None:
    assert ChunkSizer(size=5, target_seconds=0.5, minimum=100).size == 100
    assert ChunkSizer(size=10**9, target_seconds=0.5, maximum=50_000).size == 50_000


def test_sizer__fast_chunks_grow_the_size_but_at_most_by_the_step() -> None:
    sizer = ChunkSizer(size=1_000, target_seconds=0.5)
    # 1,000 rows in 0.01 s: the ideal is 50,000, but one step is at most x2 before smoothing.
    assert sizer.observe(rows=1_000, seconds=0.01) == 1_500


def test_sizer__slow_chunks_shrink_the_size_but_at_most_by_the_step() -> None:
    sizer = ChunkSizer(size=1_000, target_seconds=0.5)
    assert sizer.observe(rows=1_000, seconds=50.0) == 750  # (1000 + 500) / 2


def test_sizer__converges_on_the_target_chunk_time() -> None:
    sizer = ChunkSizer(size=1_000, target_seconds=0.5)
    rows_per_second = 4_000  # the target is then 2,000 rows per chunk
    for _ in range(30):
        sizer.observe(rows=sizer.size, seconds=sizer.size / rows_per_second)
    assert abs(sizer.size - 2_000) <= 20


def test_sizer__one_slow_chunk_does_not_halve_the_next() -> None:
    sizer = ChunkSizer(size=2_000, target_seconds=0.5)
    sizer.observe(rows=2_000, seconds=30.0)  # a lock wait
    assert sizer.size > 1_000


def test_sizer__stays_within_the_bounds() -> None:
    sizer = ChunkSizer(size=200, target_seconds=0.5, minimum=100, maximum=300)
    for _ in range(10):
        sizer.observe(rows=sizer.size, seconds=100.0)
    assert sizer.size == 100
    for _ in range(10):
        sizer.observe(rows=sizer.size, seconds=0.0001)
    assert sizer.size == 300


def test_sizer__fixed_size_ignores_timings() -> None:
    sizer = ChunkSizer(size=500, target_seconds=0.5, fixed=True)
    assert sizer.observe(rows=500, seconds=100.0) == 500
    assert sizer.observe(rows=500, seconds=0.0001) == 500


def test_sizer__empty_chunk_changes_nothing() -> None:
    sizer = ChunkSizer(size=500, target_seconds=0.5)
    assert sizer.observe(rows=0, seconds=0.0) == 500


def test_sizer__zero_duration_grows_by_the_step() -> None:
    sizer = ChunkSizer(size=500, target_seconds=0.5)
    assert sizer.observe(rows=500, seconds=0.0) == 750


def test_sizer__statement_timeout_halves_even_a_fixed_size_and_below_the_minimum() -> None:
    sizer = ChunkSizer(size=100, target_seconds=0.5, minimum=100, fixed=True)
    assert sizer.shrink() == 50
    assert sizer.shrink() == 25
    for _ in range(10):
        sizer.shrink()
    assert sizer.size == 1


def test_sizer__operator_size_fixes_the_size() -> None:
    sizer = ChunkSizer(size=1_000, target_seconds=0.5)
    sizer.retune(size=42)
    assert (sizer.size, sizer.fixed) == (42, True)
    assert sizer.observe(rows=42, seconds=0.0001) == 42


def test_sizer__operator_target_frees_a_fixed_size() -> None:
    sizer = ChunkSizer(size=1_000, target_seconds=0.5, fixed=True)
    sizer.retune(target_seconds=2.0)
    assert (sizer.target_seconds, sizer.fixed) == (2.0, False)
    assert sizer.observe(rows=1_000, seconds=0.01) > 1_000
