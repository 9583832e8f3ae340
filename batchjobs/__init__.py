"""Resumable, keyset-chunked batch jobs for Django.

A job declares its rows and what to do with one chunk; the library owns the loop, the
transaction, the checkpoint, retries, progress events, signals and the run's lease.
(None of these modules imports a model, so the app package can load them at once. The
deploy gate, ``batchjobs.gate.RequireJobFinished``, does: migrations import it from there.)
"""

from __future__ import annotations

from batchjobs.bulk import update_by_key
from batchjobs.chunk import Chunk
from batchjobs.effects import Delivery
from batchjobs.job import Interruption, ResumableJob, RunInfo
from batchjobs.parameters import Param

__all__ = [
    "Chunk",
    "Delivery",
    "Interruption",
    "Param",
    "ResumableJob",
    "RunInfo",
    "update_by_key",
]
