"""Many items at once, for the library's tests (``tickets.seeding`` is the domain's)."""

from __future__ import annotations

import uuid

from django.utils import timezone

from tests.testapp.models import Item

_STATUSES = [s.value for s in Item.Status]


def seed_items(count: int) -> int:
    """Create ``count`` items in one ``bulk_create``: titled ``Item i``, the statuses in
    turn, each with a fresh token issued now."""
    now = timezone.now()
    Item.objects.bulk_create(
        (
            Item(
                token=uuid.uuid4(), token_issued_at=now, title=f"Item {i}", status=_STATUSES[i % 3]
            )
            for i in range(count)
        ),
        batch_size=5_000,
    )
    return count
