"""Close the tickets nobody has touched for a while.

A ticket is idle when its ``updated_at`` is older than ``--as-of`` minus ``--days``. The
moment is a parameter, set when the run is created and stored with it, so a resume days
later closes by the same cutoff (and the same rows) as the run began with, not a later one.

Closing takes a row out of the job's own filter. That loses nothing: the library seeks by
key after the checkpoint, never by position, so rows leaving the filter behind the cursor
shift no later row. Each chunk is one ranged ``UPDATE`` through the filter, so a ticket the
application touched since the chunk was planned is no longer idle and stays open; only
``status`` and ``updated_at`` are written (never the token).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.db.models import QuerySet
from django.db.models.functions import Now
from django.utils import timezone

from batchjobs import Chunk, Param, ResumableJob, RunInfo
from tickets.models import Ticket

OPEN_STATUSES = [Ticket.Status.OPEN.value, Ticket.Status.PENDING.value]


class CloseIdleTickets(ResumableJob):
    name = "close_idle_tickets"
    description = "Close the open and pending tickets nobody has touched for --days days."

    days = Param(
        int,
        required=True,
        min=1,
        max=36_500,
        help="Close tickets not updated for longer than this many days",
    )
    status = Param(
        str,
        choices=OPEN_STATUSES,
        help="Close only the tickets in this status (default: open and pending alike)",
    )
    as_of = Param(
        datetime,
        default=timezone.now,
        help="Count the days back from this moment (ISO 8601; a resume keeps the run's)",
    )

    @property
    def cutoff(self) -> datetime:
        """Tickets last updated before this are idle."""
        return self.as_of - timedelta(days=self.days)

    def get_queryset(self) -> QuerySet[Ticket]:
        statuses = [self.status] if self.status else OPEN_STATUSES
        return Ticket.objects.filter(status__in=statuses, updated_at__lt=self.cutoff)

    def process(self, chunk: Chunk) -> int:
        # The chunk's key range through the job's filter: a ticket touched since it was
        # planned no longer matches and stays as it is. A queryset update bypasses
        # auto_now, hence updated_at by hand: closing is a change.
        return chunk.queryset.update(status=Ticket.Status.CLOSED, updated_at=Now())

    def pending(self, run: RunInfo) -> QuerySet[Ticket]:
        # A ticket present at the start that is still idle by the run's cutoff was missed.
        return self.get_queryset().filter(pk__lte=run.high_water_mark)
