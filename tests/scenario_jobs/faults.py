"""Scenario jobs of tests/faults: each injects one fault from inside a real runner process.

They write tokens exactly as the real job does (one statement per chunk through
``Chunk.update``, fresh values from the model's factory) and add one misbehaviour, steered
by environment variables so that no test hook lives in the library.
"""

from __future__ import annotations

import os
from typing import Any

from django.db import connection
from django.db.models.functions import Now

from batchjobs import Chunk
from jobs.rotate_ticket_tokens import RotateTicketTokens
from tests.scenario_jobs.scenarios import _Rotation
from tickets.models import Ticket
from tickets.tokens import new_tokens


class CollidingRotation(_Rotation):
    """The new token of one row is an EXISTING token of another row: a real unique violation.

    SCENARIO_COLLIDE: ``once`` (the first attempt in this process only: the retry draws
    fresh tokens, as a random collision would) or ``always`` (every attempt collides).
    SCENARIO_COLLIDE_KEY: the row that collides (default: the first row of the first chunk).
    The copied token belongs to a row not yet rotated, so it is a live, leaked secret: the
    database's error message quotes it, and no output may.
    """

    name = "scenario_colliding_rotation"
    description = "Rotation whose new token collides with an existing one (fault tests)."

    def __init__(self) -> None:
        self.collisions = 0

    def process(self, chunk: Chunk) -> int:
        tokens: list[Any] = new_tokens(len(chunk))
        mode = os.environ.get("SCENARIO_COLLIDE", "once")
        key = int(os.environ.get("SCENARIO_COLLIDE_KEY", "0")) or chunk.first
        if key in chunk.keys and (mode == "always" or self.collisions == 0):
            self.collisions += 1
            # A row after the chunk (not rotated yet), else before it, else in it.
            candidates = (
                Ticket.objects.filter(pk__gt=chunk.last).order_by("pk"),
                Ticket.objects.filter(pk__lt=chunk.first).order_by("-pk"),
                Ticket.objects.filter(pk__in=chunk.keys).exclude(pk=key).order_by("pk"),
            )
            existing = next(t for qs in candidates for t in qs.values_list("token", flat=True)[:1])
            tokens[list(chunk.keys).index(key)] = existing
        return chunk.update(token=tokens, token_issued_at=Now())


class SlowStatementRotation(_Rotation):
    """After rotating, a chunk of more than SCENARIO_SLOW_ABOVE rows runs one statement of
    SCENARIO_SLOW_SECONDS (``pg_sleep``): longer than ``--statement-timeout``."""

    name = "scenario_slow_statement_rotation"
    description = "Rotation whose large chunks hit the statement timeout (fault tests)."

    def process(self, chunk: Chunk) -> int:
        changed = self.rotate(chunk)
        if len(chunk) > int(os.environ.get("SCENARIO_SLOW_ABOVE", "100")):
            with connection.cursor() as cursor:
                cursor.execute(
                    "SELECT pg_sleep(%s)", [float(os.environ.get("SCENARIO_SLOW_SECONDS", "3"))]
                )
        return changed


class WriteBackRotation(RotateTicketTokens):
    """The real rotation, plus a write-back behind the model's back: in the last chunk's
    transaction, raw SQL puts the OLD token and OLD issue time back on the rows listed in
    SCENARIO_WRITE_BACK_KEYS (as a stale cache or an old code path would). The
    verification pass must find and re-sweep them."""

    name = "scenario_write_back_rotation"
    description = "Rotation whose rows get their old token written back (fault tests)."

    def __init__(self) -> None:
        self.old: dict[int, tuple[Any, Any]] = {}
        self.written_back = False

    def process(self, chunk: Chunk) -> int:
        wanted = {int(k) for k in os.environ.get("SCENARIO_WRITE_BACK_KEYS", "").split(",") if k}
        remember = wanted.intersection(chunk.keys) - self.old.keys()
        if remember and not self.written_back:
            rows = Ticket.objects.filter(pk__in=remember).values_list(
                "pk", "token", "token_issued_at"
            )
            self.old.update({pk: (token, issued) for pk, token, issued in rows})
        changed = super().process(chunk)
        if chunk.last == chunk.keyset.upto and self.old and not self.written_back:
            self._write_back()
            self.written_back = True
        return changed

    def _write_back(self) -> None:
        token = Ticket._meta.get_field("token")
        issued = Ticket._meta.get_field("token_issued_at")
        table = connection.ops.quote_name(Ticket._meta.db_table)
        with connection.cursor() as cursor:
            cursor.executemany(
                f"UPDATE {table} SET token = %s, token_issued_at = %s WHERE id = %s",
                [
                    (
                        token.get_db_prep_value(old_token, connection),
                        issued.get_db_prep_value(old_issued, connection),
                        pk,
                    )
                    for pk, (old_token, old_issued) in sorted(self.old.items())
                ],
            )
