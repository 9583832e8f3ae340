"""Rate and time-remaining estimation. Pure: no clock, no I/O; callers pass the times.

The rate is measured over a sliding window of recent chunks (by wall time, sleeps and
retries included), so the ETA follows a slowdown within a window instead of averaging it
away over the whole run, and one odd chunk does not swing it.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass


@dataclass(frozen=True)
class Snapshot:
    done: int
    total: int | None
    percent: float | None
    rate: float | None
    eta_seconds: float | None
    elapsed_seconds: float


class ProgressEstimator:
    """Tracks rows done against a total estimate.

    ``done`` may start above zero (a resumed run); the rate counts only this process's work.
    ``set_aside`` rows (quarantined) are neither done nor left to do.
    """

    def __init__(
        self,
        *,
        total: int | None,
        done: int = 0,
        started_at: float,
        window_seconds: float = 30.0,
        set_aside: int = 0,
    ) -> None:
        self.total = total
        self.done = done
        self.set_aside = set_aside
        self.started_at = started_at
        self.window_seconds = window_seconds
        self._samples: deque[tuple[float, int]] = deque([(started_at, done)])

    def advance(self, rows: int, *, now: float) -> None:
        self.done += rows
        self._samples.append((now, self.done))
        # Keep one sample at or before the window's start so the window is always full.
        while len(self._samples) > 2 and self._samples[1][0] <= now - self.window_seconds:
            self._samples.popleft()

    def rate(self, *, now: float) -> float | None:
        first_t, first_done = self._samples[0]
        span = now - first_t
        if span <= 0 or self.done == first_done:
            return None
        return (self.done - first_done) / span

    def snapshot(self, *, now: float) -> Snapshot:
        rate = self.rate(now=now)
        percent = eta = None
        if self.total:
            percent = min(100.0, 100.0 * self.done / self.total)
            if rate:
                eta = max(0, self.total - self.done - self.set_aside) / rate
        elif self.total == 0:
            percent, eta = 100.0, 0.0
        return Snapshot(
            done=self.done,
            total=self.total,
            percent=None if percent is None else round(percent, 2),
            rate=None if rate is None else round(rate, 1),
            eta_seconds=None if eta is None else round(eta, 1),
            elapsed_seconds=round(now - self.started_at, 3),
        )


def format_duration(seconds: float | None) -> str:
    """``3725`` -> ``1h02m05s``; ``None`` -> ``?``."""
    if seconds is None:
        return "?"
    seconds = round(seconds)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m{secs:02d}s"
    if minutes:
        return f"{minutes}m{secs:02d}s"
    return f"{secs}s"
