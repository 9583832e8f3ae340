"""Rate and time-remaining estimation. Pure: no clock, no I/O; callers pass the times.

The rate is measured over a sliding window of recent chunks, so the ETA follows a slowdown
within a window instead of averaging it away over the whole run, and one odd chunk does not
swing it. The window runs on *working* time: time the run spent in a requested wait (its
``--sleep``, throttling by a health check, a retry's backoff) is reported through
``waited`` and taken out, so a long wait does not read as the job getting slower.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

# Before this much working time and this many chunks of this session, the rate rests on
# too little (start-up, the chunk size still growing): the ETA fields are null, not wild.
RELIABLE_AFTER_SECONDS = 2.0
RELIABLE_AFTER_CHUNKS = 3

# The range is at least this wide either side of the point rate, however steady the run.
_MIN_MARGIN = 0.03
# The short window, for the "recent rate" end of the range: a sixth of the window.
_SHORT_FRACTION = 1 / 6


@dataclass(frozen=True)
class Snapshot:
    done: int
    total: int | None
    percent: float | None
    rate: float | None
    eta_seconds: float | None
    eta_low_seconds: float | None
    eta_high_seconds: float | None
    reliable: bool
    elapsed_seconds: float


class ProgressEstimator:
    """Tracks rows done against a total estimate.

    ``done`` may start above zero (a resumed run); the rate counts only this process's work:
    a resumed session starts with no samples of its own and is unreliable again until it has
    some. ``set_aside`` rows (quarantined) are neither done nor left to do. ``done`` never
    goes backwards through ``advance`` and ``percent`` stays within [0, 100].

    The point estimate is ``left / rate`` with the rate over the window (working time),
    plus the requested sleep still to come between chunks (``snapshot``'s
    ``sleep_per_chunk``). The range around it combines two kinds of doubt:

    * a trend: the rate over the last sixth of the window and the rate over the whole
      window disagree when the run is speeding up or slowing down; the range spans both;
    * noise: per-chunk times (seconds per row) scatter; with a coefficient of variation
      ``cv`` over ``n`` chunks seen and ``m`` chunks left, the remaining time has a relative
      spread of about ``cv * sqrt(1/n + 1/m)`` (error of the mean rate plus the remaining
      chunks' own scatter); the range widens both ends by twice that, at least 3%.

    Why not a fancier model: the figures come from a few dozen chunks of one process, and
    operators read the range as "somewhere between", so it should be wide when the chunks
    scatter or the rate drifts and narrow when they do not, and be explainable in a line.
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
        self.chunks = 0
        self._waited = 0.0
        # (working time, done) after each chunk of this session; working time is wall time
        # less the waits reported so far.
        self._samples: deque[tuple[float, int]] = deque([(started_at, done)])

    def waited(self, seconds: float) -> None:
        """The run spent ``seconds`` in a requested wait (sleep, throttle, backoff): not work."""
        self._waited += max(0.0, seconds)

    def _working(self, now: float) -> float:
        return now - self._waited

    def advance(self, rows: int, *, now: float) -> None:
        self.done += max(0, rows)
        self.chunks += 1
        t = self._working(now)
        self._samples.append((t, self.done))
        # Keep one sample at or before the window's start so the window is always full.
        while len(self._samples) > 2 and self._samples[1][0] <= t - self.window_seconds:
            self._samples.popleft()

    def rate(self, *, now: float) -> float | None:
        return self._rate_since(0, now=now)

    def _rate_since(self, index: int, *, now: float) -> float | None:
        first_t, first_done = self._samples[index]
        span = self._working(now) - first_t
        if span <= 0 or self.done == first_done:
            return None
        return (self.done - first_done) / span

    def _short_rate(self, *, now: float) -> float | None:
        since = self._working(now) - self.window_seconds * _SHORT_FRACTION
        # The latest sample at or before ``since``, but leave at least two chunks in it.
        index = max(0, len(self._samples) - 3)
        for i in range(len(self._samples) - 3, -1, -1):
            if self._samples[i][0] <= since:
                index = i
                break
        return self._rate_since(index, now=now)

    def _spread(self, chunks_left: float) -> float:
        """Relative half-width of the range from the scatter of per-chunk seconds per row."""
        per_row = [
            (t1 - t0) / (d1 - d0)
            for (t0, d0), (t1, d1) in zip(self._samples, list(self._samples)[1:], strict=False)
            if d1 > d0
        ]
        n = len(per_row)
        if n < 2:
            return _MIN_MARGIN
        mean = sum(per_row) / n
        if mean <= 0:
            return _MIN_MARGIN
        cv = math.sqrt(sum((x - mean) ** 2 for x in per_row) / (n - 1)) / mean
        return max(_MIN_MARGIN, 2 * cv * math.sqrt(1 / n + 1 / max(1.0, chunks_left)))

    def _mean_chunk(self) -> float:
        rows = self.done - self._samples[0][1]
        return max(1.0, rows / max(1, len(self._samples) - 1))

    def reliable(self, *, now: float) -> bool:
        working = self._working(now) - self.started_at
        return self.chunks >= RELIABLE_AFTER_CHUNKS and working >= RELIABLE_AFTER_SECONDS

    def snapshot(
        self, *, now: float, sleep_per_chunk: float = 0.0, chunk_size: int | None = None
    ) -> Snapshot:
        """The figures at ``now``. ``sleep_per_chunk`` (the run's ``--sleep``) and
        ``chunk_size`` add the requested sleeps still to come to the ETA: they were taken out
        of the rate, but the operator will wait them out all the same."""
        rate = self.rate(now=now)
        reliable = self.reliable(now=now)
        percent = eta = low = high = None
        if self.total:
            percent = max(0.0, min(100.0, 100.0 * self.done / self.total))
            left = max(0, self.total - self.done - self.set_aside)
            if left == 0:
                eta = low = high = 0.0
                reliable = True
            elif rate and reliable:
                chunks_left = left / (chunk_size or self._mean_chunk())
                sleeps = chunks_left * sleep_per_chunk
                short = self._short_rate(now=now) or rate
                margin = self._spread(chunks_left)
                fast, slow = max(rate, short) * (1 + margin), min(rate, short) / (1 + margin)
                eta = left / rate + sleeps
                low = left / fast + sleeps
                high = left / slow + sleeps
        elif self.total == 0:
            percent, eta, low, high, reliable = 100.0, 0.0, 0.0, 0.0, True
        return Snapshot(
            done=self.done,
            total=self.total,
            percent=None if percent is None else round(percent, 2),
            rate=None if rate is None else round(rate, 1),
            eta_seconds=None if eta is None else round(eta, 1),
            eta_low_seconds=None if low is None else round(low, 1),
            eta_high_seconds=None if high is None else round(high, 1),
            reliable=reliable,
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
