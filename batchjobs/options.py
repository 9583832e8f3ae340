"""``RunOptions``: how to run, and the one place their values are checked.

Every field has a ``runjob`` option of the same name; the command line, the admin's tuning
and a caller in Python all end here, so a value is refused the same way whoever gives it.
"""

from __future__ import annotations

from dataclasses import dataclass

from batchjobs.conf import Settings
from batchjobs.exceptions import InvalidOption
from batchjobs.sizing import ChunkSizer


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
        positive = {
            "batch_size": self.batch_size,
            "target_chunk_seconds": self.target_chunk_seconds,
            "max_runtime": self.max_runtime,
            "statement_timeout": self.statement_timeout,
            "lock_timeout": self.lock_timeout,
        }
        for name, value in positive.items():
            if value is not None and value <= 0:
                raise InvalidOption(f"--{name.replace('_', '-')} must be greater than zero.")
        if self.sleep < 0:
            raise InvalidOption("--sleep must be zero or more.")
        if self.max_quarantined is not None and self.max_quarantined < 0:
            raise InvalidOption("--max-quarantined must be zero or more.")
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
