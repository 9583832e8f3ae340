"""``RunOptions``: how to run, and the one place their values are checked.

Every field has a ``runjob`` option of the same name; the command line, the admin's tuning
and a caller in Python all end here, so a value is refused the same way whoever gives it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from batchjobs.conf import Settings
from batchjobs.exceptions import InvalidOption
from batchjobs.sizing import ChunkSizer

MAX_ROWS = 1_000_000
MAX_SECONDS = 7 * 24 * 3600.0  # a week: no sleep, runtime or chunk target needs more
# PostgreSQL's statement_timeout and lock_timeout are whole milliseconds in a 32-bit int,
# and 0 means "no timeout": 0.0001 s must be refused, not silently turned into "never".
MIN_TIMEOUT_SECONDS = 0.001
MAX_TIMEOUT_SECONDS = 2_147_483.647
_TIMEOUT_RANGE = "PostgreSQL's timeouts are whole milliseconds from 1 to 2147483647"


@dataclass(frozen=True)
class Limit:
    """The values an option takes. Every number has an upper bound too: an absurd value
    (a batch size of 10**23) would otherwise reach the database as a raw "bigint out of
    range", or an error deep in a run."""

    minimum: float
    maximum: float
    seconds: bool = False  # a number of seconds (a float); else a whole number
    why_minimum: str = ""
    why_maximum: str = ""


_WEEK = Limit(0.001, MAX_SECONDS, seconds=True, why_maximum="7 days")
_TIMEOUT = Limit(
    MIN_TIMEOUT_SECONDS,
    MAX_TIMEOUT_SECONDS,
    seconds=True,
    why_minimum=_TIMEOUT_RANGE,
    why_maximum=_TIMEOUT_RANGE,
)
LIMITS: dict[str, Limit] = {
    "batch_size": Limit(1, MAX_ROWS),
    "sample": Limit(1, MAX_ROWS),
    "max_quarantined": Limit(0, MAX_ROWS),
    "runs": Limit(1, 1_000),
    # Each worker holds a database connection: more than this would crowd the server.
    "workers": Limit(1, 64, why_maximum="each worker holds a database connection"),
    # Zero is allowed: no sleep between chunks.
    "sleep": Limit(0.0, MAX_SECONDS, seconds=True, why_maximum="7 days"),
    # Zero would mean "use the default" to the runner: refuse it rather than surprise.
    "target_chunk_seconds": _WEEK,
    "max_runtime": _WEEK,
    "statement_timeout": _TIMEOUT,
    "lock_timeout": _TIMEOUT,
}


def check(name: str, value: float, *, text: str | None = None) -> float:
    """``value`` if option ``name`` takes it; otherwise ``InvalidOption`` saying why, in
    the words the command line, the admin and a caller in Python all get."""
    limit = LIMITS[name]
    shown = text if text is not None else str(value) if isinstance(value, int) else f"{value:g}"
    if limit.seconds:
        if not math.isfinite(value) or value < 0:
            raise InvalidOption(f"{shown} is not a non-negative number of seconds")
        if value < limit.minimum:
            raise InvalidOption(
                f"{shown} is below the minimum of {_seconds(limit.minimum)} seconds"
                + _because(limit.why_minimum)
            )
        if value > limit.maximum:
            raise InvalidOption(
                f"{shown} is over the maximum of {_seconds(limit.maximum)} seconds"
                + _because(limit.why_maximum)
            )
        return value
    if value < limit.minimum:
        below = {1: "is not greater than zero", 0: "is negative"}.get(
            int(limit.minimum), f"is below {limit.minimum:,}"
        )
        raise InvalidOption(f"{shown} {below}")
    if value > limit.maximum:
        raise InvalidOption(f"{shown} is over the maximum of {int(limit.maximum):,}")
    return value


def _seconds(value: float) -> str:
    return f"{value:,.3f}".rstrip("0").rstrip(".")


def _because(why: str) -> str:
    return f" ({why})" if why else ""


@dataclass(frozen=True)
class Timeouts:
    """Per-chunk ``statement_timeout`` and ``lock_timeout``, in seconds (PostgreSQL)."""

    statement: float | None
    lock: float | None


@dataclass(frozen=True)
class RunOptions:
    """How to run; every field has a command-line option of the same name."""

    batch_size: int | None = None
    target_chunk_seconds: float | None = None
    sleep: float = 0.0
    restart: bool = False
    resume: bool = False
    retry_quarantined: bool = False
    max_runtime: float | None = None
    statement_timeout: float | None = None
    lock_timeout: float | None = None
    max_quarantined: int | None = None
    vacuum: bool = False
    sql_side: bool = False
    reason: str = ""

    def __post_init__(self) -> None:
        for name in LIMITS.keys() & vars(self).keys():
            value = getattr(self, name)
            if value is not None:
                try:
                    check(name, value)
                except InvalidOption as exc:
                    raise InvalidOption(f"--{name.replace('_', '-')}: {exc}") from None
        if self.restart and (self.resume or self.retry_quarantined):
            raise InvalidOption("--restart cannot be combined with --resume/--retry-quarantined.")

    # -- the options resolved against the settings' defaults, in one place -------------

    def timeouts(self, settings: Settings) -> Timeouts:
        return Timeouts(
            statement=self.statement_timeout or settings.STATEMENT_TIMEOUT_SECONDS,
            lock=self.lock_timeout or settings.LOCK_TIMEOUT_SECONDS,
        )

    def chunk_sizer(self, settings: Settings) -> ChunkSizer:
        """A fixed --batch-size is honoured whatever the bounds; otherwise the size adapts
        between the settings' minimum and maximum (larger with --sql-side: no values
        travel)."""
        largest = settings.MAX_SQL_SIDE_CHUNK_SIZE if self.sql_side else settings.MAX_CHUNK_SIZE
        return ChunkSizer(
            size=self.batch_size or settings.INITIAL_CHUNK_SIZE,
            target_seconds=self.target_chunk_seconds or settings.TARGET_CHUNK_SECONDS,
            minimum=min(settings.MIN_CHUNK_SIZE, self.batch_size or 1 << 62),
            maximum=max(largest, self.batch_size or 0),
            fixed=self.batch_size is not None,
        )

    def quarantine_limit(self, settings: Settings) -> int:
        return settings.MAX_QUARANTINED if self.max_quarantined is None else self.max_quarantined

    def vacuum_lock(self, settings: Settings) -> float | None:
        """How long VACUUM may wait for its lock; ``None`` without --vacuum."""
        return self.timeouts(settings).lock if self.vacuum else None
