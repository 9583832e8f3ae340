"""Which database errors are transient, and the tenacity policy that retries them.

Classification reads the SQLSTATE, not the driver's class names, so it holds for psycopg2
and psycopg 3 alike; SQLite has no SQLSTATE and is recognised by its one transient
message. Only the chunk's whole transaction is retried, never a statement inside an open
``atomic()`` block: the runner opens the transaction inside the retried callable.
"""

from __future__ import annotations

import enum
import re
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from django.db import utils as db_utils
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception,
    stop_when_event_set,
    wait_exponential_jitter,
)

from batchjobs.exceptions import (
    BatchJobError,
    DatabaseBusy,
    DatabaseFailure,
    DatabaseUnavailable,
    InsufficientPrivilege,
    SchemaMismatch,
)


class ErrorKind(enum.StrEnum):
    CONNECTION_LOST = "connection_lost"
    DEADLOCK = "deadlock"
    SERIALIZATION_FAILURE = "serialization_failure"
    LOCK_TIMEOUT = "lock_timeout"
    STATEMENT_TIMEOUT = "statement_timeout"
    # 57014 for another reason: pg_cancel_backend() from another session, or our own
    # cancel on a second stop signal. Not a sign that the chunk is too large.
    QUERY_CANCELLED = "query_cancelled"
    DATABASE_BUSY = "database_busy"
    UNIQUE_VIOLATION = "unique_violation"
    PERMANENT = "permanent"


TRANSIENT = frozenset(ErrorKind) - {ErrorKind.PERMANENT}

_BY_SQLSTATE = {
    "40P01": ErrorKind.DEADLOCK,
    "40001": ErrorKind.SERIALIZATION_FAILURE,
    "55P03": ErrorKind.LOCK_TIMEOUT,
    "23505": ErrorKind.UNIQUE_VIOLATION,
    "57P01": ErrorKind.CONNECTION_LOST,  # admin_shutdown: pg_terminate_backend, fast shutdown
    "57P02": ErrorKind.CONNECTION_LOST,  # crash_shutdown
    "57P03": ErrorKind.CONNECTION_LOST,  # cannot_connect_now: the server is starting up
    "53300": ErrorKind.CONNECTION_LOST,  # too_many_connections
}

# A unique violation is transient only for jobs that make random values: one retry makes
# fresh ones. A deterministic collision fails again at once and is not retried further.
_ATTEMPTS_FOR_UNIQUE_VIOLATION = 2


def sqlstate(exc: BaseException) -> str | None:
    """The SQLSTATE of a database error or of the driver error it wraps."""
    for candidate in (exc, exc.__cause__):
        if candidate is None:
            continue
        code = getattr(candidate, "pgcode", None) or getattr(candidate, "sqlstate", None)
        if code:
            return str(code)
    return None


def classify(exc: BaseException) -> ErrorKind:
    code = sqlstate(exc)
    if code is not None:
        if code == "57014":
            return _cancelled_why(exc)
        if code in _BY_SQLSTATE:
            return _BY_SQLSTATE[code]
        if code.startswith("08"):  # connection_exception class
            return ErrorKind.CONNECTION_LOST
        return ErrorKind.PERMANENT
    if isinstance(exc, db_utils.OperationalError) and "database is locked" in str(exc):
        return ErrorKind.DATABASE_BUSY
    if isinstance(exc, db_utils.InterfaceError):
        return ErrorKind.CONNECTION_LOST
    if isinstance(exc, db_utils.OperationalError) and _is_postgres_driver_error(exc):
        # No SQLSTATE: libpq lost the socket ("server closed the connection unexpectedly",
        # "could not connect", "SSL SYSCALL error: EOF detected").
        return ErrorKind.CONNECTION_LOST
    return ErrorKind.PERMANENT


def _cancelled_why(exc: BaseException) -> ErrorKind:
    """PostgreSQL says 57014 (query_canceled) for a statement_timeout and for a cancel
    request alike; only its message tells them apart ("canceling statement due to
    statement timeout" against "... due to user request"). A server whose lc_messages is
    not English reads as a cancel: the chunk is retried without being halved."""
    cause = exc.__cause__ if exc.__cause__ is not None else exc
    diag = getattr(cause, "diag", None)
    message = getattr(diag, "message_primary", None) or str(cause)
    if "statement timeout" in message.lower():
        return ErrorKind.STATEMENT_TIMEOUT
    return ErrorKind.QUERY_CANCELLED


def is_transient(exc: BaseException) -> bool:
    return classify(exc) in TRANSIENT


def _is_postgres_driver_error(exc: BaseException) -> bool:
    cause = exc.__cause__
    return cause is not None and type(cause).__module__.split(".")[0] in {"psycopg2", "psycopg"}


def _stop(max_attempts: int) -> Callable[[RetryCallState], bool]:
    def stop(state: RetryCallState) -> bool:
        exc = state.outcome.exception() if state.outcome else None
        limit = max_attempts
        if exc is not None and classify(exc) is ErrorKind.UNIQUE_VIOLATION:
            limit = min(limit, _ATTEMPTS_FOR_UNIQUE_VIOLATION)
        return state.attempt_number >= limit

    return stop


def policy(
    *,
    max_attempts: int,
    max_wait: float,
    sleep: Callable[[float], None],
    before_sleep: Callable[[RetryCallState], None],
    stop_event: threading.Event,
    out_of_time: Callable[[], bool] = lambda: False,
    initial_wait: float = 0.2,
) -> Retrying:
    """The retry policy for one chunk: transient errors only, exponential backoff with
    jitter, at most ``max_attempts`` tries, and no more waiting once a stop is requested
    or the run is ``out_of_time`` (--max-runtime)."""
    at_limit = _stop(max_attempts)
    on_stop_request = stop_when_event_set(stop_event)

    def stop(state: RetryCallState) -> bool:
        # What stop_any does, for plain callables too (it is typed for stop_base only).
        return at_limit(state) or on_stop_request(state) or out_of_time()

    return Retrying(
        retry=retry_if_exception(is_transient),
        stop=stop,
        wait=wait_exponential_jitter(multiplier=initial_wait, max=max_wait, jitter=initial_wait),
        sleep=sleep,
        before_sleep=before_sleep,
        reraise=True,
    )


_MAX_MESSAGE = 300


def describe(exc: BaseException) -> tuple[str, str]:
    """``(error_class, message)`` safe to log and store: never a value from a row.

    A database's message can quote the offending value ("Key (token)=(...) already
    exists", "invalid input syntax for type uuid: ..."), so for errors with a SQLSTATE only
    the condition and the names of the constraint, table and column are kept, plus, for
    structural errors (class 42: a missing table, column or function, a missing
    privilege), the server's primary message, which names objects, not values. Other
    errors keep the first line of their message, truncated.
    """
    cause = exc.__cause__ if exc.__cause__ is not None else exc
    error_class = f"{type(cause).__module__}.{type(cause).__qualname__}"
    code = sqlstate(exc)
    if code is not None:
        kind = classify(exc)
        condition = kind.value if kind is not ErrorKind.PERMANENT else "database error"
        diag = getattr(cause, "diag", None)
        names = [
            f"{label} {value}"
            for label, value in (
                ("constraint", getattr(diag, "constraint_name", None)),
                ("table", getattr(diag, "table_name", None)),
                ("column", getattr(diag, "column_name", None)),
            )
            if value
        ]
        message = f"{condition} (SQLSTATE {code})" + (f" on {', '.join(names)}" if names else "")
        structural = _structural_message(cause, code)
        return error_class, message + (f": {structural}" if structural else "")
    if type(exc).__name__ == "ValidationError":  # Django's quote the value ("“x” is not ...")
        codes = getattr(exc, "code", None) or "invalid"
        return error_class, f"a value failed validation ({codes})"
    text = _hide(str(exc)).strip().splitlines()
    message = text[0] if text else type(exc).__name__
    if len(message) > _MAX_MESSAGE:
        message = message[: _MAX_MESSAGE - 3] + "..."
    return error_class, message


_HIDDEN: ContextVar[tuple[str, ...]] = ContextVar("batchjobs_hidden", default=())
_SHORTEST_HIDDEN = 4  # a shorter value would mask innocent text (and is guessed anyway)


@contextmanager
def hiding(values: Iterable[str]) -> Iterator[None]:
    """Within: ``describe`` shows these strings as ``****`` wherever a message quotes
    them. The runner hides its job's sensitive parameters, so that an exception a job
    raises with one in it is logged, stored and shown masked like everything else."""
    token = _HIDDEN.set(tuple(v for v in values if len(v) >= _SHORTEST_HIDDEN))
    try:
        yield
    finally:
        _HIDDEN.reset(token)


def _hide(text: str) -> str:
    for value in _HIDDEN.get():
        text = text.replace(value, "****")
    return text


# Class 42 (syntax error or access rule violation) names objects, not row values; but a
# syntax error quotes the query text near the error, and that can be a literal value.
_QUOTES_THE_QUERY = frozenset({"42601"})


def _structural_message(cause: BaseException, code: str) -> str | None:
    """The server's primary message of a class-42 error (``relation "x" does not exist``);
    ``None`` for every other class, whose messages can quote a row's values."""
    if not code.startswith("42") or code in _QUOTES_THE_QUERY:
        return None
    diag = getattr(cause, "diag", None)
    primary = getattr(diag, "message_primary", None)
    if not primary:  # no diagnostics: the driver's message opens with the primary one
        primary = (str(cause).strip().splitlines() or [""])[0]
    if len(primary) > _MAX_MESSAGE:
        primary = primary[: _MAX_MESSAGE - 3] + "..."
    return primary or None


_UNDEFINED_OBJECT = frozenset({"42P01", "42703", "42883"})  # table, column, function
_SQLITE_UNDEFINED = ("no such table:", "no such column:", "no such function:")
_SQLITE_READ_ONLY = "attempt to write a readonly database"
_DENIED_TABLE = re.compile(r"permission denied for (?:table|relation|view) \"?([^\"\s]+)")


def explain(exc: BaseException, *, doing: str, after: str = "") -> BatchJobError:
    """The library's error for a database error met while ``doing`` ("Could not claim a
    run of X"), with a message safe to print (see ``describe``) and the exit code that
    tells a script what to do: retry later (69 lost, 75 busy), fix a grant (77), migrate
    (2), or look at the message (1). ``after`` ends the message ("Nothing was changed.").
    """
    _, said = describe(exc)
    tail = f" {after}" if after else ""
    kind = classify(exc)
    code = sqlstate(exc)
    if kind is ErrorKind.CONNECTION_LOST:
        return DatabaseUnavailable(f"{doing}: the database connection was lost ({said}).{tail}")
    if kind in TRANSIENT and kind is not ErrorKind.UNIQUE_VIOLATION:
        return DatabaseBusy(f"{doing}: the database is busy ({said}); try again in a moment.{tail}")
    if code == "42501":
        found = _DENIED_TABLE.search(said)
        return InsufficientPrivilege(f"{doing}: {said}.{tail}", table=found and found[1])
    if code is None and _SQLITE_READ_ONLY in said:
        return InsufficientPrivilege(
            f"{doing}: {said}: the SQLite file and its directory must be writable by the "
            f"user running this.{tail}"
        )
    if code in _UNDEFINED_OBJECT or (code is None and said.startswith(_SQLITE_UNDEFINED)):
        return SchemaMismatch(
            f"{doing}: {said}. The database's tables do not match the code: run `python "
            "manage.py migrate` (if the migrations are recorded but the tables are missing, "
            f"`migrate APP zero --fake` first).{tail}"
        )
    return DatabaseFailure(f"{doing}: {said}.{tail}")
