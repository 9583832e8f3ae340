"""Fast, flat-memory creation of many tickets, for the demo, the tests and the benchmark."""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator

from django.db import connection, transaction
from django.utils import timezone

from tickets.models import Ticket
from tickets.search_title import normalise
from tickets.tokens import new_tokens

BATCH = 50_000
_STATUSES = [s.value for s in Ticket.Status]


def seed(count: int, *, on_batch: Callable[[int], None] | None = None) -> int:
    """Create ``count`` tickets in batches; memory is bounded by one batch.

    PostgreSQL gets ``COPY`` (the fastest way in); other databases get ``bulk_create`` in
    one transaction per batch.
    """
    created = 0
    for size in _batches(count):
        if connection.vendor == "postgresql":
            _copy_batch(size, start=created)
        else:
            _bulk_create_batch(size, start=created)
        created += size
        if on_batch:
            on_batch(created)
    return created


def _batches(count: int) -> Iterator[int]:
    full, rest = divmod(count, BATCH)
    yield from [BATCH] * full
    if rest:
        yield rest


def _copy_batch(size: int, *, start: int) -> None:
    now = timezone.now().isoformat()
    buf = io.StringIO()
    for i, token in enumerate(new_tokens(size), start=start):
        title = f"Ticket {i}"
        buf.write(
            f"{token}\t{now}\t{title}\t{normalise(title)}\t{_STATUSES[i % 3]}\t{now}\t{now}\n"
        )
    buf.seek(0)
    table = connection.ops.quote_name(Ticket._meta.db_table)
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.copy_expert(
            f"COPY {table} (token, token_issued_at, title, search_title, status, created_at,"
            " updated_at) FROM STDIN",
            buf,
        )


def _bulk_create_batch(size: int, *, start: int) -> None:
    # bulk_create() fills search_title from the title (the field's pre_save), as save() does.
    now = timezone.now()
    rows = [
        Ticket(
            token=token,
            token_issued_at=now,
            title=f"Ticket {i}",
            status=_STATUSES[i % 3],
        )
        for i, token in enumerate(new_tokens(size), start=start)
    ]
    with transaction.atomic():
        Ticket.objects.bulk_create(rows, batch_size=5_000)
