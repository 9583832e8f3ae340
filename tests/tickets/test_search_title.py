"""The search title: one normalisation, the same in Python and in PostgreSQL for any title,
and written by the model on every path it writes a row.

The titles are drawn at random (a fixed seed, so a failure is repeatable) from an
alphabet of awkward characters: every whitespace character of the rule and ones that
look like whitespace but are not in it, letters whose lowercase Python and PostgreSQL
disagree on (Turkish dotted I, final sigma, sharp s, the Kelvin sign), combining marks,
emoji, punctuation and the characters a regular expression treats specially.
"""

from __future__ import annotations

import random
import string

import pytest
from django.db import connection

from tickets.models import Ticket
from tickets.search_title import WHITESPACE, normalise, normalised_sql

AWKWARD = (
    string.ascii_letters
    + string.digits
    + string.punctuation
    + WHITESPACE
    + "\x1c\x1d\x1e\x1f\u200b\u2060\ufeff\u180e"  # whitespace to str.split(), not to the rule
    + "İ\u0131Σ\u03c3ςßẞÉéǅﬁ\u212a\u00b5\u0301\u0307🎫中文"  # lowercase that depends on who does it
)


def _titles(n: int, seed: int = 20261130) -> list[str]:
    rng = random.Random(seed)
    titles = ["".join(rng.choice(AWKWARD) for _ in range(rng.randint(0, 60))) for _ in range(n)]
    return [
        *titles,
        "",
        " ",
        "\t\n",
        "  Printer\tON  fire ",
        "ΟΔΟΣ İstanbul STRASSE ẞ",
        " a \u3000 b\u00a0\u00a0c\x85",
        "[a-z]+ \\s* $1 % _ ' \"",
    ]


def test_normalise__lowercases_ascii_collapses_whitespace_and_trims() -> None:
    assert normalise("  Printer\tON  fire ") == "printer on fire"
    assert normalise("A\u3000\u00a0B\r\nC\x85") == "a b c"
    assert normalise(" \t ") == ""


def test_normalise__leaves_everything_else_as_it_is() -> None:
    """Non-ASCII letters keep their case, and characters outside the whitespace rule stay,
    whatever Python's str.lower() or str.split() would do with them."""
    assert normalise("ΟΔΟΣ İ ẞ \u212a") == "ΟΔΟΣ İ ẞ \u212a"  # the Kelvin sign
    assert normalise("a\x1cb\u200bc") == "a\x1cb\u200bc"


def test_normalise__is_idempotent_and_never_longer_on_random_titles() -> None:
    for title in _titles(2000):
        once = normalise(title)
        assert normalise(once) == once, repr(title)
        assert len(once) <= len(title)
        assert "  " not in once and once == once.strip(" ")
        assert not set(once) & (set(WHITESPACE) - {" "}), repr(title)


@pytest.mark.django_db(transaction=True)
def test_search_title__save_and_bulk_create_write_it_and_a_title_edit_keeps_it_true() -> None:
    saved = Ticket.objects.create(title="  First\tTICKET ")
    [bulk] = Ticket.objects.bulk_create([Ticket(title="Second  ONE")])
    assert dict(Ticket.objects.values_list("pk", "search_title")) == {
        saved.pk: "first ticket",
        bulk.pk: "second one",
    }
    saved.title = "Renamed\u00a0Title"
    saved.save(update_fields=["title"])
    assert Ticket.objects.get(pk=saved.pk).search_title == "renamed title"


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_normalised_sql__equals_the_python_normalisation_on_random_titles() -> None:
    """Both write the column (save() in Python, ``--sql-side`` in SQL): they must agree on
    every title, byte for byte, or a search depends on who wrote the row."""
    titles = _titles(2000)
    Ticket.objects.bulk_create([Ticket(title=title) for title in titles], batch_size=1000)
    expression = normalised_sql(connection)
    assert expression is not None
    rows = Ticket.objects.annotate(in_sql=expression).values_list("title", "search_title", "in_sql")
    differ = [(t, py, sql) for t, py, sql in rows if py != sql or py != normalise(t)]
    assert not differ, differ[:5]
    assert len(rows) == len(titles)


@pytest.mark.django_db
def test_normalised_sql__none_on_sqlite_which_cannot_collapse_whitespace() -> None:
    expected_none = connection.vendor == "sqlite"
    assert (normalised_sql(connection) is None) == expected_none
