from __future__ import annotations

import os
import time

from django.db.models import QuerySet
from django.db.models.functions import Now

from batchjobs import Chunk, ResumableJob
from tickets.models import Ticket
from tickets.tokens import new_tokens


class _Rotation(ResumableJob):
    abstract = True

    def get_queryset(self) -> QuerySet[Ticket]:
        return Ticket.objects.all()

    def rotate(self, chunk: Chunk) -> int:
        return chunk.update(token=new_tokens(len(chunk)), token_issued_at=Now())


class SlowRotation(_Rotation):
    """Rotates, sleeping SCENARIO_CHUNK_SLEEP seconds inside each chunk's transaction."""

    name = "scenario_slow_rotation"
    description = "Rotation that takes its time inside each chunk (fault tests)."

    def process(self, chunk: Chunk) -> int:
        changed = self.rotate(chunk)
        time.sleep(float(os.environ.get("SCENARIO_CHUNK_SLEEP", "0.05")))
        return changed


class FailingRotation(_Rotation):
    """Raises on the keys listed in SCENARIO_FAIL_KEYS ('all' fails every chunk)."""

    name = "scenario_failing_rotation"
    description = "Rotation whose code raises on chosen rows (fault tests)."

    def process(self, chunk: Chunk) -> int:
        spec = os.environ.get("SCENARIO_FAIL_KEYS", "")
        if spec == "all":
            raise RuntimeError("the job's code is broken")
        bad = {int(k) for k in spec.split(",") if k}
        hit = bad.intersection(chunk.keys)
        if hit:
            raise ValueError(f"cannot rotate ticket {min(hit)}")
        return self.rotate(chunk)
