"""``BATCHJOBS_*`` settings with their typed defaults, in one place."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from django.conf import settings


@dataclass(frozen=True)
class Settings:
    JOB_PACKAGES: tuple[str, ...] = ("jobs",)
    TARGET_CHUNK_SECONDS: float = 0.5
    INITIAL_CHUNK_SIZE: int = 1_000
    MIN_CHUNK_SIZE: int = 100
    MAX_CHUNK_SIZE: int = 20_000
    # No values travel with --sql-side, so chunks may be larger: the target time bounds them.
    MAX_SQL_SIDE_CHUNK_SIZE: int = 100_000
    MAX_ATTEMPTS: int = 10
    MAX_RETRY_WAIT_SECONDS: float = 30.0
    STATEMENT_TIMEOUT_SECONDS: float = 30.0
    LOCK_TIMEOUT_SECONDS: float = 5.0
    PROGRESS_INTERVAL_SECONDS: float = 1.0
    HEARTBEAT_SECONDS: float = 10.0
    STALE_AFTER_SECONDS: float = 120.0
    MAX_QUARANTINED: int = 10
    HEALTH_CHECKS: tuple[str, ...] = ()
    # A task of Django's Tasks framework works this long on a run, then enqueues its
    # successor: a worker process is freed every few minutes (a deploy can restart it) and no
    # task outlives its backend's patience.
    TASK_MAX_SECONDS: float = 300.0
    # The queue those tasks go to, apart from the application's own (TASKS' QUEUES lists it).
    TASK_QUEUE: str = "batchjobs"


def get() -> Settings:
    values: dict[str, Any] = {}
    for field in fields(Settings):
        name = f"BATCHJOBS_{field.name}"
        if hasattr(settings, name):
            value = getattr(settings, name)
            values[field.name] = tuple(value) if isinstance(value, list) else value
    return Settings(**values)
