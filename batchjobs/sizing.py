"""Adapt the chunk size to a target time per chunk. Pure: callers pass measured seconds.

Short chunks keep row locks and transactions brief for the live application; long ones
amortise round trips. The sizer aims at ``target_seconds`` per chunk, moves by at most
``max_step`` (x2 up, /2 down) per chunk and smooths with the previous size, so one slow
chunk (a checkpoint, a lock wait) does not halve the throughput of the next hundred.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class ChunkSizer:
    size: int
    target_seconds: float
    minimum: int = 100
    maximum: int = 20_000
    fixed: bool = False
    max_step: float = 2.0
    smoothing: float = 0.5

    def __post_init__(self) -> None:
        self.size = self._clamp(self.size)

    def observe(self, *, rows: int, seconds: float) -> int:
        """Record one chunk's duration and return the size for the next one."""
        if self.fixed or rows <= 0:
            return self.size
        ideal = rows * self.target_seconds / seconds if seconds > 0 else self.size * self.max_step
        low, high = self.size / self.max_step, self.size * self.max_step
        ideal = min(max(ideal, low), high)
        blended = self.smoothing * self.size + (1 - self.smoothing) * ideal
        self.size = self._clamp(round(blended))
        return self.size

    def shrink(self) -> int:
        """Halve the size after a chunk hit a statement timeout (even when fixed)."""
        self.size = max(1, self.size // 2)
        return self.size

    def retune(self, *, size: int | None = None, target_seconds: float | None = None) -> None:
        """Apply an operator's live change: a size fixes the size; a target frees it."""
        if target_seconds is not None:
            self.target_seconds = target_seconds
            self.fixed = False
        if size is not None:
            self.size = max(1, size)
            self.fixed = True

    def _clamp(self, size: int) -> int:
        return max(self.minimum, min(self.maximum, size))
