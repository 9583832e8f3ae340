"""``RunOptions``: how to run, and the one place their values are checked.

Every field has a ``runjob`` option of the same name; the command line, the admin's tuning
and a caller in Python all end here, so a value is refused the same way whoever gives it.
"""

from __future__ import annotations

from dataclasses import dataclass

from batchjobs.exceptions import InvalidOption


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
