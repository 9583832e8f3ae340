"""The token belongs to the token machinery: an ordinary save never writes it back."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from tickets.models import Ticket

pytestmark = pytest.mark.django_db


def _rotate(ticket: Ticket) -> tuple[uuid.UUID, datetime]:
    """What a rotation does: a queryset update, behind any loaded instance's back."""
    fresh, when = uuid.uuid4(), datetime(2031, 5, 1, tzinfo=UTC)
    Ticket.objects.filter(pk=ticket.pk).update(token=fresh, token_issued_at=when)
    return fresh, when


def test_ticket__creation_sets_a_fresh_token_and_issue_time() -> None:
    before = datetime.now(UTC)
    first, second = Ticket.objects.create(title="a"), Ticket.objects.create(title="b")
    first.refresh_from_db()
    assert first.token.version == 4
    assert first.token != second.token
    assert before - timedelta(seconds=1) <= first.token_issued_at <= datetime.now(UTC)


def test_ticket__creation_keeps_a_given_token() -> None:
    token = uuid.uuid4()
    assert Ticket.objects.create(title="a", token=token).token == token


def test_ticket__full_save_of_a_stale_instance_does_not_write_the_token_back() -> None:
    stale = Ticket.objects.create(title="before")
    leaked = stale.token
    fresh, when = _rotate(stale)
    stale.title = "after"
    stale.status = Ticket.Status.CLOSED
    stale.save()
    stored = Ticket.objects.get(pk=stale.pk)
    assert (stored.title, stored.status) == ("after", "closed")  # the edit is kept...
    assert (stored.token, stored.token_issued_at) == (fresh, when)  # ...the rotation too
    assert stored.token != leaked


def test_ticket__save_statement_does_not_name_the_token_columns() -> None:
    ticket = Ticket.objects.create(title="a")
    ticket.title = "b"
    with CaptureQueriesContext(connection) as queries:
        ticket.save()
    (update,) = [q["sql"] for q in queries.captured_queries if q["sql"].startswith("UPDATE")]
    assert '"title"' in update
    assert '"token"' not in update and '"token_issued_at"' not in update


def test_ticket__update_fields_naming_the_token_drop_it() -> None:
    stale = Ticket.objects.create(title="before")
    fresh, when = _rotate(stale)
    stale.title = "after"
    stale.token = uuid.uuid4()
    stale.save(update_fields=["title", "token", "token_issued_at"])
    stored = Ticket.objects.get(pk=stale.pk)
    assert stored.title == "after"
    assert (stored.token, stored.token_issued_at) == (fresh, when)


def test_ticket__update_fields_of_only_the_token_writes_nothing() -> None:
    stale = Ticket.objects.create(title="before")
    fresh, _ = _rotate(stale)
    stale.token = uuid.uuid4()
    with CaptureQueriesContext(connection) as queries:
        stale.save(update_fields=["token"])
    assert not [q for q in queries.captured_queries if q["sql"].startswith("UPDATE")]
    assert Ticket.objects.get(pk=stale.pk).token == fresh


def test_ticket__auto_now_still_moves_on_save() -> None:
    ticket = Ticket.objects.create(title="a")
    Ticket.objects.filter(pk=ticket.pk).update(updated_at=datetime(2000, 1, 1, tzinfo=UTC))
    ticket.refresh_from_db()
    ticket.title = "b"
    ticket.save()
    assert Ticket.objects.get(pk=ticket.pk).updated_at.year > 2000


def test_ticket__token_is_unique_in_the_database() -> None:
    from django.db import IntegrityError, transaction  # noqa: PLC0415

    first = Ticket.objects.create(title="a")
    with pytest.raises(IntegrityError), transaction.atomic():
        Ticket.objects.create(title="b", token=first.token)
