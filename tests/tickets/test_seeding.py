"""``seed_tickets`` on the database the suite runs on (bulk_create on SQLite, COPY on
PostgreSQL)."""

from __future__ import annotations

import io

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from tickets import seeding
from tickets.models import Ticket
from tickets.search_title import normalise

pytestmark = pytest.mark.django_db(transaction=True)


def _seed(*args: str) -> str:
    out = io.StringIO()
    call_command("seed_tickets", *args, stdout=out)
    return out.getvalue()


def test_seed_tickets__count_creates_that_many() -> None:
    assert _seed("--count", "7") == "Created 7 tickets (7 in all).\n"
    assert _seed("--count", "5") == "Created 5 tickets (12 in all).\n"
    assert Ticket.objects.count() == 12


def test_seed_tickets__total_tops_the_table_up() -> None:
    _seed("--count", "7")
    assert _seed("--total", "10") == "Created 3 tickets (10 in all).\n"
    assert _seed("--total", "10") == "Created 0 tickets (10 in all).\n"
    assert _seed("--total", "4") == "Created 0 tickets (10 in all).\n"
    assert Ticket.objects.count() == 10


def test_seed_tickets__rows_are_valid_tickets_with_distinct_v4_tokens() -> None:
    _seed("--count", "300")
    rows = list(Ticket.objects.values("token", "token_issued_at", "title", "status"))
    assert len({r["token"] for r in rows}) == 300
    assert all(r["token"].version == 4 for r in rows)
    assert {r["status"] for r in rows} == set(Ticket.Status.values)
    assert all(r["title"].startswith("Ticket ") and r["token_issued_at"] for r in rows)


def test_seed_tickets__rows_have_their_search_title() -> None:
    """COPY (PostgreSQL) names the column itself; bulk_create gets it from the field."""
    _seed("--count", "30")
    rows = Ticket.objects.values_list("title", "search_title")
    assert all(search == normalise(title) for title, search in rows)
    assert ("Ticket 7", "ticket 7") in rows


def test_seed_tickets__many_batches_with_progress_at_verbosity_2(monkeypatch) -> None:
    monkeypatch.setattr(seeding, "BATCH", 40)
    out = _seed("--count", "100", "--verbosity", "2")
    assert out.splitlines() == [
        "  40 / 100",
        "  80 / 100",
        "  100 / 100",
        "Created 100 tickets (100 in all).",
    ]
    assert Ticket.objects.count() == 100
    assert Ticket.objects.values("token").distinct().count() == 100


def test_seed_tickets__negative_count_is_refused() -> None:
    with pytest.raises(CommandError, match=r"--count/--total must be zero or more\."):
        _seed("--count", "-1")
    assert not Ticket.objects.exists()


def test_seed_tickets__needs_count_or_total() -> None:
    with pytest.raises(CommandError, match="one of the arguments --count --total is required"):
        _seed()
    with pytest.raises(CommandError, match="not allowed with argument"):
        _seed("--count", "1", "--total", "2")
