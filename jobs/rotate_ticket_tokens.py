"""Give every ticket a new token after a leak.

Each chunk is one statement that writes only ``token`` (and its issue time): a concurrent
edit of any other column by the live application is never lost. New tokens come from the
model's own factory (``tickets.tokens``), drawn from the OS CSPRNG one batch per chunk.
"""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from django.db.models.functions import Now

from batchjobs import Chunk, ResumableJob, RunInfo
from tickets.models import Ticket
from tickets.tokens import new_token_hexes


class RotateTicketTokens(ResumableJob):
    name = "rotate_ticket_tokens"
    description = "Give every ticket a fresh random token (after a token leak)."

    def get_queryset(self) -> QuerySet[Ticket]:
        return Ticket.objects.all()

    def process(self, chunk: Chunk) -> int:
        return chunk.update(token=new_token_hexes(len(chunk)), token_issued_at=Now())

    def sql_values(self, connection: Any) -> dict[str, Any] | None:
        # gen_random_uuid() is PostgreSQL's CSPRNG-backed v4 UUID: equivalent to the
        # factory's tokens, minus the Python round trip. Not on SQLite.
        if connection.vendor != "postgresql":
            return None
        from django.contrib.postgres.functions import RandomUUID  # noqa: PLC0415

        return {"token": RandomUUID(), "token_issued_at": Now()}

    def pending(self, run: RunInfo) -> QuerySet[Ticket]:
        # A row present at the start whose token was issued before the run began still
        # carries a leaked token (a write-back, or a change that bypassed the model).
        return Ticket.objects.filter(
            pk__lte=run.high_water_mark, token_issued_at__lt=run.started_at
        )
