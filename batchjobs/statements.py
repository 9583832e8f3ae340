"""The statements the bulk writers send: fields by name, values shared by every row
compiled to SQL, and execution on the raw DB-API cursor.

Values are sent through the raw cursor: with ``DEBUG=True`` Django's debug cursor would
log each statement with its values and keep it in ``connection.queries``; for a token
rotation that is a secret in the logs and a chunk-sized string per statement in memory.
Errors are still translated into ``django.db`` exceptions.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from django.db import models
from django.db.models.sql import UpdateQuery

if TYPE_CHECKING:
    from django.db.backends.base.base import BaseDatabaseWrapper


def field(model: type[models.Model], name: str) -> models.Field[Any, Any]:
    # get_field() may also return a reverse relation or a GenericForeignKey, which are not
    # Fields; a job writes to its model's own fields, so a name is one of those.
    return model._meta.pk if name == "pk" else model._meta.get_field(name)  # type: ignore[return-value]


def column_of(field_: models.Field[Any, Any]) -> str:
    """The field's column. Every field a value can be written to has one: only a relation
    with no column of its own (a ``ForeignObject``) has ``None``."""
    assert field_.column is not None, f"{field_.name} has no column"
    return field_.column


def concrete_of(model: type[models.Model]) -> type[models.Model]:
    """The model whose table holds ``model``'s rows: itself, unless it is a proxy. Django
    sets it on every model class (only an ``Options`` not yet given a class has ``None``)."""
    concrete_model = model._meta.concrete_model
    assert concrete_model is not None, f"{model.__name__} is not a model class"
    return concrete_model


def compile_shared(
    model: type[models.Model], shared: Mapping[str, Any], connection: BaseDatabaseWrapper
) -> list[tuple[str, str, list[Any]]]:
    """``[(column, sql, params)]`` for values that are the same on every row."""
    query = UpdateQuery(model)
    compiler = query.get_compiler(connection=connection)
    out = []
    for name, value in shared.items():
        field_ = field(model, name)
        if hasattr(value, "resolve_expression"):
            resolved = value.resolve_expression(query, allow_joins=False, for_save=True)
            sql, params = compiler.compile(resolved)
            out.append((column_of(field_), sql, list(params)))
        else:
            prepared = field_.get_db_prep_save(value, connection=connection)
            out.append((column_of(field_), "%s", [prepared]))
    return out


_FORMAT_PLACEHOLDER = re.compile(r"(?<!%)%s")


def execute_quietly(
    connection: BaseDatabaseWrapper, sql: str, params: Sequence[Any], *, many: bool = False
) -> int:
    """Execute on the raw DB-API cursor: no DEBUG logging of values, errors still wrapped."""
    connection.ensure_connection()
    if connection.vendor == "sqlite":  # the same rewrite Django's SQLite cursor does
        sql = _FORMAT_PLACEHOLDER.sub("?", sql).replace("%%", "%")
    with connection.wrap_database_errors:
        cursor = connection.connection.cursor()
        try:
            if many:
                cursor.executemany(sql, params)
            else:
                cursor.execute(sql, params)
            rowcount: int = cursor.rowcount  # DB-API: rows affected, -1 if unknown
            return rowcount
        finally:
            cursor.close()
