"""``--vacuum``: VACUUM ANALYZE the table after the run is recorded (a rotation rewrites
every row). It says when it starts, waits a bounded time for its lock, stops at the first
stop signal (the run has succeeded: there is nothing to save) and names why it did not
complete. A failed VACUUM is reported, never turned into a failed run.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from django.db import models

from batchjobs import events, retry
from batchjobs.database import cancel_statement, table_bytes, vacuum_analyze
from batchjobs.stopping import ForcedStop, Stopper

if TYPE_CHECKING:
    from django.db.backends.base.base import BaseDatabaseWrapper
    from structlog.stdlib import BoundLogger


def vacuum(
    *,
    connection: BaseDatabaseWrapper,
    model: type[models.Model],
    stopper: Stopper,
    lock_seconds: float,
    clock: Callable[[], float],
    log: BoundLogger,
) -> tuple[dict[str, Any], str]:
    """``(figures to add to the run's stats, a sentence for the operator or "")``."""
    if connection.vendor != "postgresql":
        return {}, ""
    table = model._meta.db_table
    if stopper.requested:
        cause = f"skipped: {stopper.signal_name or 'a stop request'} came first"
        return {}, f" VACUUM did not run ({cause}); run VACUUM ANALYZE {table} by hand."
    started = clock()
    log.info(events.VACUUM_STARTED, table=table, lock_timeout_seconds=lock_seconds)
    try:
        with stopper.cancelling(lambda: cancel_statement(connection)):
            vacuum_analyze(connection, model, lock_seconds=lock_seconds)
    except (Exception, ForcedStop) as exc:
        error_class, error = retry.describe(exc)
        cause = _cause(exc, stopper, lock_seconds, table)
        log.warning(events.VACUUM_FAILED, error_class=error_class, error=error, cause=cause)
        return {}, f" VACUUM did not complete ({cause}); run VACUUM ANALYZE {table} by hand."
    figures = {
        "vacuum_seconds": round(clock() - started, 3),
        "table_bytes_after_vacuum": table_bytes(connection, model),
    }
    return figures, ""


def _cause(exc: BaseException, stopper: Stopper, lock_seconds: float, table: str) -> str:
    if stopper.requested:
        return f"cancelled by {stopper.signal_name or 'a stop request'}"
    kind = retry.classify(exc)
    if kind is retry.ErrorKind.LOCK_TIMEOUT:
        return (
            f"{table} stayed locked for over {lock_seconds:g}s (another VACUUM, "
            "autovacuum or a schema change holds it)"
        )
    if kind is retry.ErrorKind.QUERY_CANCELLED:
        return "cancelled by another session (pg_cancel_backend)"
    return retry.describe(exc)[1]
