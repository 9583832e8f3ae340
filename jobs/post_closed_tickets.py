"""Post every closed ticket to a webhook, as JSON, once per run at least.

The job writes nothing to the tickets: ``process`` only records one effect per closed
ticket in the chunk's transaction (the outbox), and ``deliver`` posts it after the chunk
committed, retried until the receiver answers 2xx. A crash between a post and its record
posts that ticket again, with the same ``Idempotency-Key`` header: the receiver de-duplicates
on it. A ticket's token is a secret and never leaves the database.
"""

from __future__ import annotations

import json
import urllib.request
from typing import Any
from urllib.parse import urlsplit

from django.db.models import QuerySet

from batchjobs import Chunk, Delivery, Param, ResumableJob
from tickets.models import Ticket

# A receiver that keeps the connection open is given up on after this; the attempt is
# retried (the wait for it is the only one a stop signal cannot cut short).
TIMEOUT_SECONDS = 10.0


def check_url(url: str) -> None:
    """Refuse a URL urllib would not POST to, without quoting it (it may carry a
    credential)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError("must be an http:// or https:// URL with a host")


def post_json(url: str, body: Any, *, idempotency_key: str, timeout: float) -> None:
    """POST ``body`` as JSON with an ``Idempotency-Key`` header; raise unless 2xx.

    Errors never quote the URL (it may carry a credential): urllib's say the status or
    the socket error only, and a URL that is not http(s) is refused here in the same way.
    """
    check_url(url)
    request = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        method="POST",
        headers={"Content-Type": "application/json", "Idempotency-Key": idempotency_key},
    )
    with urllib.request.urlopen(request, timeout=timeout) as response:
        response.read()


class PostClosedTickets(ResumableJob):
    name = "post_closed_tickets"
    description = "Post every closed ticket to a webhook (at least once, idempotency key)."

    # Sensitive: a webhook URL often carries its credential. The run keeps a digest only,
    # so a resume is given it again (the same one): the run's owed effects go where the
    # run's first ones went.
    url = Param(
        str,
        required=True,
        sensitive=True,
        validate=check_url,
        help="Post each closed ticket to this http(s) URL",
    )

    def get_queryset(self) -> QuerySet[Ticket]:
        return Ticket.objects.filter(status=Ticket.Status.CLOSED)

    def process(self, chunk: Chunk) -> int:
        tickets = Ticket.objects.filter(pk__in=chunk.keys).values("id", "title", "updated_at")
        for ticket in tickets:
            chunk.effect(
                ticket["id"],
                {
                    "id": ticket["id"],
                    "title": ticket["title"],
                    "status": Ticket.Status.CLOSED.value,
                    "updated_at": ticket["updated_at"].isoformat(),
                },
            )
        return 0  # no row of the table changes

    def deliver(self, delivery: Delivery) -> None:
        post_json(
            self.url,
            delivery.payload,
            idempotency_key=delivery.idempotency_key,
            timeout=TIMEOUT_SECONDS,
        )
