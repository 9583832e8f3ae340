"""Resumable, keyset-chunked batch jobs for Django.

A job declares its rows and what to do with one chunk; the library owns the loop, the
transaction, the checkpoint, retries, progress events, signals and the run's lease.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__all__ = ["Chunk", "ResumableJob", "RunInfo", "update_by_key"]

if TYPE_CHECKING:
    from batchjobs.bulk import update_by_key
    from batchjobs.job import ResumableJob, RunInfo
    from batchjobs.keyset import Chunk


def __getattr__(name: str) -> Any:
    # Lazy, so that importing the app package does not import models before apps are ready.
    if name in {"ResumableJob", "RunInfo"}:
        from batchjobs import job  # noqa: PLC0415

        return getattr(job, name)
    if name == "Chunk":
        from batchjobs.keyset import Chunk  # noqa: PLC0415

        return Chunk
    if name == "update_by_key":
        from batchjobs.bulk import update_by_key  # noqa: PLC0415

        return update_by_key
    raise AttributeError(name)
