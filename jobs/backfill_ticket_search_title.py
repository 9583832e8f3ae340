"""Fill ``search_title`` on the tickets written before the column existed.

Step 2 of a zero-downtime NOT NULL column (docs/writing-a-job.md, "A deploy gate"):
migration ``tickets.0002`` added the column, nullable, and the model writes it for every
row it saves from then on; this job fills the older rows; ``tickets.0003`` refuses to run
until none is left, then makes the column NOT NULL.

Its rows are the tickets still without a search title, so each chunk's writes take its
rows out of its own queryset: a resumed or repeated run only does what is left.
"""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet

from batchjobs import Chunk, ResumableJob, RunInfo, update_by_key
from tickets.models import Ticket
from tickets.search_title import normalise, normalised_sql


class BackfillTicketSearchTitle(ResumableJob):
    name = "backfill_ticket_search_title"
    description = "Fill the normalised search title of tickets written before it existed."

    def get_queryset(self) -> QuerySet[Ticket]:
        return Ticket.objects.filter(search_title__isnull=True)

    def process(self, chunk: Chunk) -> int:
        # The value comes from another column of the row, so read that column under the
        # row's lock (the UPDATE would take it anyway): a title edited by the application
        # between the read and the write would otherwise get the old title's search title.
        # Rows the application filled meanwhile (its save() writes the column) drop out
        # of the queryset here and keep their value.
        rows = list(chunk.queryset.select_for_update().order_by("pk").values_list("pk", "title"))
        return update_by_key(
            chunk.model,
            key="pk",
            keys=[pk for pk, _ in rows],
            values={"search_title": [normalise(title) for _, title in rows]},
            bounds=(chunk.first, chunk.last),
        )

    def sql_values(self, connection: Any) -> dict[str, Any] | None:
        # One UPDATE per chunk computes it from the row as it is then; PostgreSQL only
        # (SQLite has no regexp_replace to collapse whitespace with).
        expression = normalised_sql(connection, "title")
        return None if expression is None else {"search_title": expression}

    def pending(self, run: RunInfo) -> QuerySet[Ticket]:
        return self.get_queryset().filter(pk__lte=run.high_water_mark)
