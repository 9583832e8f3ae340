"""Set columns on many rows by key in as few statements as the backend allows.

PostgreSQL: the chunk's keys and values are COPied into a temporary table, then one
``UPDATE ... FROM`` it (``bulk_copy``: why COPY, and why bounded by the key range). SQLite:
one prepared statement executed for every row, inside the chunk's transaction. Other backends:
Django's ``bulk_update``. Never a CASE/WHEN statement for a large chunk: Django's is slow to
build and, on PostgreSQL, crosses the JIT threshold (docs/decisions.md has the figures).

Multi-table inheritance: a child's inherited fields are columns of an ancestor's table, so
the fields are grouped by the table that holds them and each table gets its own statement
(``_update_tables``); the usual case, one table, takes one statement as above.

Values go through the raw DB-API cursor (``statements``): never into DEBUG's query log.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from django.db import connections, models, router, transaction

from batchjobs.bulk_copy import update_postgresql
from batchjobs.statements import column_of, compile_shared, concrete_of, execute_quietly, field

if TYPE_CHECKING:
    from django.db.backends.base.base import BaseDatabaseWrapper


def update_by_key(
    model: type[models.Model],
    *,
    key: str,
    keys: Sequence[Any],
    values: Mapping[str, Any],
    bounds: tuple[Any, Any] | None = None,
    using: str | None = None,
) -> int:
    """Set ``values`` on the rows whose ``key`` is in ``keys``; return the rows updated.

    A list or tuple value gives one value per key, in the same order; an expression
    (``Now()``, ``Value``...) or a constant applies to every row. ``bounds`` (the first and
    last key) lets the database prune to the chunk's range.
    """
    if not keys:
        return 0
    alias = using or router.db_for_write(model)
    connection = connections[alias]
    per_row = {name: v for name, v in values.items() if isinstance(v, list | tuple)}
    shared = {name: v for name, v in values.items() if name not in per_row}
    for name, column in per_row.items():
        if len(column) != len(keys):
            raise ValueError(f"{name}: {len(column)} values for {len(keys)} keys")
    if connection.vendor not in ("postgresql", "sqlite"):
        # bulk_update() writes each ancestor's table itself (multi-table inheritance).
        return _update_bulk_update(model, key, keys, per_row, shared, alias)
    tables = _fields_by_table(model, key, values)
    if tables is not None:
        return _update_tables(model, key, keys, per_row, shared, bounds, tables, connection)
    return _update_table(model, key, keys, per_row, shared, bounds, connection)


def _update_table(
    model: type[models.Model],
    key: str,
    keys: Sequence[Any],
    per_row: Mapping[str, Sequence[Any]],
    shared: Mapping[str, Any],
    bounds: tuple[Any, Any] | None,
    connection: BaseDatabaseWrapper,
) -> int:
    """One table: the key and every field are columns of ``model``'s own table."""
    if connection.vendor == "postgresql":
        return update_postgresql(model, key, keys, per_row, shared, bounds, connection)
    with transaction.atomic(using=connection.alias):  # one transaction, not one per row
        return _update_executemany(model, key, keys, per_row, shared, connection)


def _owner(model: type[models.Model], name: str) -> type[models.Model]:
    """The concrete model whose table holds the field's column (an ancestor's, with
    multi-table inheritance)."""
    return concrete_of(field(model, name).model)


def _fields_by_table(
    model: type[models.Model], key: str, values: Mapping[str, Any]
) -> dict[type[models.Model], list[str]] | None:
    """``{table's model: field names}``, or ``None`` when the key and every field are
    columns of the model's own table: the common case, written with one statement."""
    concrete = concrete_of(model)
    tables: dict[type[models.Model], list[str]] = {}
    for name in values:
        tables.setdefault(_owner(model, name), []).append(name)
    if set(tables) <= {concrete} and _owner(model, key) is concrete:
        return None
    return tables


def _update_tables(
    model: type[models.Model],
    key: str,
    keys: Sequence[Any],
    per_row: Mapping[str, Sequence[Any]],
    shared: Mapping[str, Any],
    bounds: tuple[Any, Any] | None,
    tables: Mapping[type[models.Model], Sequence[str]],
    connection: BaseDatabaseWrapper,
) -> int:
    """Multi-table inheritance: one statement per table that holds some of the fields, each
    keyed on that table's own column, all in one transaction (as ``QuerySet.update`` does).

    A table that does not hold the key is keyed on its primary key: the same values when
    the key is the child's primary key (a chain of parent links), else looked up in one
    query. Returns the rows updated (the same number in each table).
    """
    concrete = concrete_of(model)
    key_field = field(model, key)
    updated = 0
    with transaction.atomic(using=connection.alias):
        for table in [*reversed(concrete._meta.get_parent_list()), concrete]:
            names = tables.get(table)
            if not names:
                continue
            table_rows = {name: per_row[name] for name in names if name in per_row}
            table_shared = {name: shared[name] for name in names if name in shared}
            if _owner(model, key) is table:
                table_key, table_keys, table_bounds = key_field.name, keys, bounds
            elif key_field.primary_key and _pk_is_parent_link_to(concrete, table):
                table_key, table_keys, table_bounds = "pk", keys, bounds
            else:
                table_keys, found = _primary_keys_in(model, key_field, keys, table, connection)
                table_key, table_bounds = "pk", None
                table_rows = {name: [col[i] for i in found] for name, col in table_rows.items()}
            if table_keys:
                counted = _update_table(
                    table, table_key, table_keys, table_rows, table_shared, table_bounds, connection
                )
                updated = max(updated, counted)
    return updated


def _pk_is_parent_link_to(model: type[models.Model], ancestor: type[models.Model]) -> bool:
    """Is ``model``'s primary key a chain of parent links up to ``ancestor`` (Django's default
    for multi-table inheritance), so that a row's key is its ancestor row's key too?"""
    while model is not ancestor:
        pk = model._meta.pk
        if pk is None or pk.remote_field is None or not pk.remote_field.parent_link:
            return False
        model = concrete_of(pk.remote_field.model)
    return True


def _primary_keys_in(
    model: type[models.Model],
    key_field: models.Field[Any, Any],
    keys: Sequence[Any],
    table: type[models.Model],
    connection: BaseDatabaseWrapper,
) -> tuple[list[Any], list[int]]:
    """``table``'s primary keys of the rows with ``keys``, and the positions in ``keys`` they
    were found at (a row deleted meanwhile has none)."""
    path = "pk" if table is concrete_of(model) else table._meta.pk.name
    rows = (
        model._base_manager.using(connection.alias)
        .filter(**{f"{key_field.name}__in": keys})
        .values_list(key_field.name, path)
    )
    by_key = {key_field.to_python(k): pk for k, pk in rows}
    found = [i for i, k in enumerate(keys) if key_field.to_python(k) in by_key]
    return [by_key[key_field.to_python(keys[i])] for i in found], found


def _update_executemany(
    model: type[models.Model],
    key: str,
    keys: Sequence[Any],
    per_row: Mapping[str, Sequence[Any]],
    shared: Mapping[str, Any],
    connection: BaseDatabaseWrapper,
) -> int:
    qn = connection.ops.quote_name
    key_field = field(model, key)
    fields_ = [field(model, name) for name in per_row]
    compiled = compile_shared(model, shared, connection)
    set_sql = ", ".join(
        [f"{qn(column_of(f))} = %s" for f in fields_]
        + [f"{qn(c)} = {sql}" for c, sql, _ in compiled]
    )
    if not set_sql:
        return 0
    shared_params = [p for _, _, ps in compiled for p in ps]
    sql = f"UPDATE {qn(model._meta.db_table)} SET {set_sql} WHERE {qn(column_of(key_field))} = %s"
    columns = [
        [f.get_db_prep_save(v, connection=connection) for v in per_row[name]]
        for f, name in zip(fields_, per_row, strict=True)
    ]
    prepared_keys = [key_field.get_db_prep_value(k, connection) for k in keys]
    rows = [
        [*(col[i] for col in columns), *shared_params, prepared_keys[i]] for i in range(len(keys))
    ]
    return execute_quietly(connection, sql, rows, many=True)


def _update_bulk_update(
    model: type[models.Model],
    key: str,
    keys: Sequence[Any],
    per_row: Mapping[str, Sequence[Any]],
    shared: Mapping[str, Any],
    alias: str,
) -> int:
    key_name = field(model, key).attname
    objs = []
    for i, k in enumerate(keys):
        obj = model(**{key_name: k})
        for name, column_values in per_row.items():
            setattr(obj, name, column_values[i])
        for name, value in shared.items():
            setattr(obj, name, value)
        objs.append(obj)
    return model._base_manager.using(alias).bulk_update(objs, [*per_row, *shared], batch_size=1_000)
