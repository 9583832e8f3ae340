"""Step 3: the search title becomes NOT NULL, once the backfill has filled every row.

The gate comes first, in the same migration: if rows still lack a search title, `migrate`
stops here, with a sentence naming the job, its newest run and the command that finishes
it, and changes nothing (the migration is one transaction; the gate runs before the
ALTER). A fresh database, or one without tickets, has nothing to fill and passes.
"""

import tickets.search_title
from django.db import migrations

from batchjobs.gate import RequireJobFinished


def tickets_without_search_title(apps):
    # The historical model: the job's own module may assume a later schema than this.
    Ticket = apps.get_model("tickets", "Ticket")
    return Ticket.objects.filter(search_title__isnull=True)


class Migration(migrations.Migration):

    dependencies = [
        ("batchjobs", "0003_no_pending_state"),  # the gate reads the job's runs
        ("tickets", "0002_ticket_search_title"),
    ]

    operations = [
        RequireJobFinished(
            "backfill_ticket_search_title", remaining=tickets_without_search_title
        ),
        migrations.AlterField(
            model_name="ticket",
            name="search_title",
            field=tickets.search_title.SearchTitleField(
                help_text="The title normalised for search (tickets.search_title).",
                source="title",
            ),
        ),
    ]
