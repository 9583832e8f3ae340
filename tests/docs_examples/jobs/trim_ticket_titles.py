"""Strip leading and trailing spaces from ticket titles."""

from __future__ import annotations

from django.db.models import Q, QuerySet
from django.db.models.functions import Trim

from batchjobs import Chunk, ResumableJob, RunInfo
from tickets.models import Ticket


class TrimTicketTitles(ResumableJob):
    name = "trim_ticket_titles"
    description = "Strip leading and trailing spaces from ticket titles."

    def get_queryset(self) -> QuerySet[Ticket]:
        # Which rows, not in which order: the runner seeks through them by primary key.
        return Ticket.objects.filter(Q(title__startswith=" ") | Q(title__endswith=" "))

    def process(self, chunk: Chunk) -> int:
        # One ranged UPDATE for the chunk; the database computes the new value.
        return chunk.queryset.update(title=Trim("title"))

    def pending(self, run: RunInfo) -> QuerySet[Ticket]:
        # Rows present at the start that still need trimming after the pass.
        return self.get_queryset().filter(pk__lte=run.high_water_mark)
