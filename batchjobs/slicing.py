"""Which slice to split, and where: pure arithmetic on row counts, no database.

Slices are split by rows, never by key values: with ids spread over 1..10**9 the middle
value can fall anywhere, while the middle *row* always halves the work. A slice is worth
splitting only while both halves keep a worker busy for a few chunks; below that, the
worker that owns it finishes sooner than a second one could start.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

# A half smaller than this many chunks is not worth a second worker.
MIN_CHUNKS_PER_HALF = 4


@dataclass(frozen=True)
class Remaining:
    slice_id: int
    rows: int  # planned minus done: an estimate (rows may have come or gone since)


@dataclass(frozen=True)
class Split:
    slice_id: int
    keep: int  # rows the owner keeps, from its cursor on (the split key is the last of them)
    give: int  # rows the new slice takes, after the split key


def choose_split(slices: Iterable[Remaining], *, chunk_size: int) -> Split | None:
    """The split of the slice with the most rows left, if both halves are worth a worker."""
    largest = max(slices, key=lambda s: (s.rows, -s.slice_id), default=None)
    if largest is None:
        return None
    keep = largest.rows // 2
    give = largest.rows - keep
    if keep < MIN_CHUNKS_PER_HALF * max(1, chunk_size):
        return None
    return Split(largest.slice_id, keep=keep, give=give)
