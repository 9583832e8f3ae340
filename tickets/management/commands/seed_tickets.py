from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from tickets.models import Ticket
from tickets.seeding import seed


class Command(BaseCommand):
    help = "Create many tickets fast (COPY on PostgreSQL), with tokens from the model's factory."

    def add_arguments(self, parser: CommandParser) -> None:
        group = parser.add_mutually_exclusive_group(required=True)
        group.add_argument("--count", type=int, help="Create this many new tickets.")
        group.add_argument(
            "--total",
            type=int,
            help="Create only as many as needed for the table to hold at least this many.",
        )

    def handle(self, *, count: int | None, total: int | None, **options: Any) -> None:
        wanted = count if count is not None else total
        if wanted is None or wanted < 0:
            raise CommandError("--count/--total must be zero or more.")
        if total is not None:
            wanted = max(0, total - Ticket.objects.count())

        def report(done: int) -> None:
            if options["verbosity"] > 1:
                self.stdout.write(f"  {done:,} / {wanted:,}")

        created = seed(wanted, on_batch=report)
        self.stdout.write(f"Created {created:,} tickets ({Ticket.objects.count():,} in all).")
