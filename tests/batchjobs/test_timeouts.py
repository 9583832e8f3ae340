"""``set_local_timeouts``: what PostgreSQL is actually told, read back with ``SHOW``."""

from __future__ import annotations

import pytest
from django.db import connection, transaction

from batchjobs.database import set_local_timeouts

pytestmark = [pytest.mark.postgres, pytest.mark.django_db]


def _shown() -> tuple[str, str]:
    with connection.cursor() as cursor:
        cursor.execute("SHOW statement_timeout")
        statement = cursor.fetchone()[0]
        cursor.execute("SHOW lock_timeout")
        return statement, cursor.fetchone()[0]


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [
        (0.0001, "1ms"),  # int(0.1 ms) was 0: "no timeout" where a tiny one was asked
        (0.0004, "1ms"),
        (0.0016, "2ms"),
        (0.25, "250ms"),
        (5, "5s"),
        (10**9, "2147483647ms"),  # beyond what PostgreSQL accepts: its maximum
    ],
)
def test_set_local_timeouts__a_positive_value_is_never_sent_as_zero(
    seconds: float, shown: str
) -> None:
    with transaction.atomic():
        set_local_timeouts(connection, statement_seconds=seconds, lock_seconds=seconds)
        assert _shown() == (shown, shown)


def test_set_local_timeouts__none_leaves_the_session_values() -> None:
    before = _shown()
    with transaction.atomic():
        set_local_timeouts(connection, statement_seconds=None, lock_seconds=None)
        assert _shown() == before
