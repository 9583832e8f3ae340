"""A ticket's search title: its title normalised for matching, made in Python or in SQL.

The normalisation lowercases the ASCII letters A-Z, turns every run of whitespace into one
space and trims both ends. Nothing more, so that Python and PostgreSQL agree on every
title, byte for byte: the column is written by both (``Ticket.save()``, ``bulk_create``
and seeding in Python; ``runjob backfill_ticket_search_title --sql-side`` in SQL), and a
search must not find a row or miss it depending on which side wrote it. Full Unicode
lowercasing does not agree: Python's ``str.lower()`` maps ``"İ"`` to two characters and
``"Σ"`` to ``"ς"`` at the end of a word, while PostgreSQL's ``lower()`` maps one character
at a time, as the database's locale says (in the C locale, ASCII only). "Whitespace" is
the Unicode White_Space property, spelled out below, not ``str.split()``'s idea of it (which
also splits on the ASCII separators \\x1c-\\x1f) nor the locale's ``[[:space:]]``.

SQLite has no ``regexp_replace``, so there the SQL form is not offered (``None``).
"""

from __future__ import annotations

import re
import string
from typing import Any

from django.db import models
from django.db.models import F, Func, Value
from django.db.models.expressions import Combinable

MAX_LENGTH = 200  # as the title's: the normalisation never makes a title longer

# The Unicode White_Space property: U+0009-U+000D, U+0020, U+0085, U+00A0, U+1680,
# U+2000-U+200A, U+2028, U+2029, U+202F, U+205F, U+3000.
WHITESPACE = (
    "\t\n\x0b\x0c\r \x85\xa0\u1680"
    + "".join(chr(c) for c in range(0x2000, 0x200B))
    + "\u2028\u2029\u202f\u205f\u3000"
)
_RUNS = re.compile(f"[{re.escape(WHITESPACE)}]+")
# A bracket expression for PostgreSQL's regexp_replace: the characters themselves (none of
# them is special inside brackets there).
_SQL_RUNS = f"[{WHITESPACE}]+"
_ASCII_LOWER = str.maketrans(string.ascii_uppercase, string.ascii_lowercase)


def normalise(title: str) -> str:
    """``"  Printer\\tON  fire "`` -> ``"printer on fire"``."""
    return _RUNS.sub(" ", title.translate(_ASCII_LOWER)).strip(" ")


def normalised_sql(connection: Any, column: str | Combinable = "title") -> Func | None:
    """``normalise(column)`` as a database expression, or ``None`` on a database without
    one (SQLite). ``translate()`` rather than ``lower()``: it lowercases exactly A-Z,
    whatever the database's locale."""
    if connection.vendor != "postgresql":
        return None
    source = F(column) if isinstance(column, str) else column
    lowered = Func(
        source,
        Value(string.ascii_uppercase),
        Value(string.ascii_lowercase),
        function="TRANSLATE",
        output_field=models.TextField(),
    )
    collapsed = Func(
        lowered,
        Value(_SQL_RUNS),
        Value(" "),
        Value("g"),
        function="REGEXP_REPLACE",
        output_field=models.TextField(),
    )
    return Func(collapsed, Value(" "), function="BTRIM", output_field=models.CharField())


class SearchTitleField(models.CharField):  # type: ignore[type-arg]
    """A ``CharField`` that the model fills from ``source`` whenever it writes the row:
    on ``save()`` and on ``bulk_create()`` (both call ``pre_save``). A queryset
    ``update()``, ``bulk_update()`` or raw SQL that changes the title must set it too."""

    description = "A normalised copy of another text field"

    def __init__(self, *args: Any, source: str = "title", **kwargs: Any) -> None:
        self.source = source
        kwargs.setdefault("max_length", MAX_LENGTH)
        kwargs.setdefault("editable", False)
        super().__init__(*args, **kwargs)

    def deconstruct(self) -> Any:
        name, path, args, kwargs = super().deconstruct()
        kwargs["source"] = self.source
        if kwargs.get("max_length") == MAX_LENGTH:
            del kwargs["max_length"]
        if kwargs.get("editable") is False:
            del kwargs["editable"]
        return name, path, args, kwargs

    def pre_save(self, model_instance: models.Model, add: bool) -> Any:
        value = normalise(getattr(model_instance, self.source))
        setattr(model_instance, self.attname, value)
        return value
