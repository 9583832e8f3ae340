"""Table size and vacuum: a full rewrite doubles a PostgreSQL table until vacuum runs."""

from __future__ import annotations

from typing import Any

from django.db import models


def table_bytes(connection: Any, model: type[models.Model]) -> int | None:
    """Heap, indexes and TOAST of the model's table (PostgreSQL); ``None`` elsewhere."""
    if connection.vendor != "postgresql":
        return None
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_total_relation_size(%s::regclass)",
            [connection.ops.quote_name(model._meta.db_table)],
        )
        return int(cursor.fetchone()[0])


def vacuum_analyze(connection: Any, model: type[models.Model]) -> None:
    """``VACUUM ANALYZE`` the table (PostgreSQL; it cannot run inside a transaction)."""
    if connection.vendor != "postgresql":
        return
    with connection.cursor() as cursor:
        cursor.execute(f"VACUUM ANALYZE {connection.ops.quote_name(model._meta.db_table)}")
