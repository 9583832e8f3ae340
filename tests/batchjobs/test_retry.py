from __future__ import annotations

import contextlib
import sqlite3
import threading
import uuid
from types import SimpleNamespace
from typing import Any

import psycopg2
import pytest
from django.db import DatabaseError, IntegrityError, OperationalError, connection, transaction
from django.db import utils as db_utils
from tenacity import RetryCallState

from batchjobs import retry
from batchjobs.exceptions import (
    DatabaseBusy,
    DatabaseFailure,
    DatabaseUnavailable,
    InsufficientPrivilege,
    SchemaMismatch,
)
from batchjobs.retry import ErrorKind, classify, describe, is_transient
from tests.batchjobs.fakes import Contention
from tests.testapp.models import Item


class _DriverError(Exception):
    """A driver exception carrying a SQLSTATE the way psycopg2 (pgcode) or psycopg 3
    (sqlstate) does."""

    def __init__(self, message: str = "driver error", *, pgcode: str | None = None, **kw: Any):
        super().__init__(message)
        self.pgcode = pgcode
        self.sqlstate = kw.get("sqlstate")
        self.diag = kw.get("diag")


def _wrapped(django_class: type[Exception], cause: BaseException) -> Exception:
    """What Django raises: its own exception class, the driver's error as the cause."""
    exc = django_class(*cause.args)
    exc.__cause__ = cause
    return exc


# -- classification, without a database -----------------------------------------------


@pytest.mark.parametrize(
    ("code", "kind"),
    [
        ("40P01", ErrorKind.DEADLOCK),
        ("40001", ErrorKind.SERIALIZATION_FAILURE),
        ("55P03", ErrorKind.LOCK_TIMEOUT),
        ("57014", ErrorKind.QUERY_CANCELLED),  # the message says which: tests below
        ("23505", ErrorKind.UNIQUE_VIOLATION),
        ("57P01", ErrorKind.CONNECTION_LOST),
        ("57P02", ErrorKind.CONNECTION_LOST),
        ("57P03", ErrorKind.CONNECTION_LOST),
        ("53300", ErrorKind.CONNECTION_LOST),
        ("08006", ErrorKind.CONNECTION_LOST),  # any connection_exception
        ("08003", ErrorKind.CONNECTION_LOST),
        ("23503", ErrorKind.PERMANENT),  # foreign key violation
        ("42P01", ErrorKind.PERMANENT),  # undefined table
        ("22P02", ErrorKind.PERMANENT),  # invalid text representation
    ],
)
def test_classify__reads_the_sqlstate_of_the_wrapped_driver_error(code: str, kind: ErrorKind):
    assert classify(_wrapped(OperationalError, _DriverError(pgcode=code))) is kind


def test_classify__reads_a_psycopg3_style_sqlstate_too() -> None:
    error = _wrapped(OperationalError, _DriverError(sqlstate="40P01"))
    assert classify(error) is ErrorKind.DEADLOCK


def test_classify__sqlite_busy_database_is_transient() -> None:
    error = _wrapped(OperationalError, sqlite3.OperationalError("database is locked"))
    assert classify(error) is ErrorKind.DATABASE_BUSY
    assert is_transient(error)


def test_classify__other_sqlite_operational_errors_are_permanent() -> None:
    error = _wrapped(OperationalError, sqlite3.OperationalError("no such table: testapp_item"))
    assert classify(error) is ErrorKind.PERMANENT
    assert not is_transient(error)


def test_classify__postgres_socket_loss_without_sqlstate_is_connection_lost() -> None:
    cause = psycopg2.OperationalError("server closed the connection unexpectedly")
    assert classify(_wrapped(OperationalError, cause)) is ErrorKind.CONNECTION_LOST


def test_classify__interface_error_is_connection_lost() -> None:
    error = _wrapped(db_utils.InterfaceError, psycopg2.InterfaceError("connection already closed"))
    assert classify(error) is ErrorKind.CONNECTION_LOST


@pytest.mark.parametrize(
    "error",
    [
        ValueError("the job's code is broken"),
        RuntimeError("boom"),
        IntegrityError("UNIQUE constraint failed: testapp_item.token"),
        OperationalError("something else"),
    ],
)
def test_classify__anything_unrecognised_is_permanent(error: Exception) -> None:
    assert classify(error) is ErrorKind.PERMANENT
    assert not is_transient(error)


def test_transient__every_kind_but_permanent() -> None:
    assert frozenset(ErrorKind) - retry.TRANSIENT == {ErrorKind.PERMANENT}


# -- classification of real database errors -------------------------------------------


@pytest.mark.django_db
def test_classify__real_unique_violation() -> None:
    token = uuid.uuid4()
    Item.objects.create(title="a", token=token)
    with pytest.raises(IntegrityError) as caught, transaction.atomic():
        Item.objects.create(title="b", token=token)
    expected = ErrorKind.UNIQUE_VIOLATION if connection.vendor == "postgresql" else None
    if expected:
        assert classify(caught.value) is expected
    else:  # SQLite gives no SQLSTATE; its unique violation is not told apart
        assert classify(caught.value) is ErrorKind.PERMANENT


@pytest.mark.django_db(transaction=True)  # the other session must see the row
def test_classify__real_lock_contention_is_transient() -> None:
    item = Item.objects.create(title="a")
    contention = Contention()
    contention.hold(item.pk)
    try:
        with pytest.raises(OperationalError) as caught, transaction.atomic():
            contention.collide(item.pk)
    finally:
        contention.release()
    expected = (
        ErrorKind.LOCK_TIMEOUT if connection.vendor == "postgresql" else ErrorKind.DATABASE_BUSY
    )
    assert classify(caught.value) is expected


@pytest.mark.postgres
@pytest.mark.django_db
def test_classify__real_statement_timeout() -> None:
    with pytest.raises(DatabaseError) as caught, transaction.atomic(), connection.cursor() as c:
        c.execute("SET LOCAL statement_timeout = '10ms'")
        c.execute("SELECT pg_sleep(2)")
    assert classify(caught.value) is ErrorKind.STATEMENT_TIMEOUT


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_classify__real_cancel_from_another_session_is_not_a_statement_timeout() -> None:
    """pg_cancel_backend() and a statement_timeout share SQLSTATE 57014; a cancel must not
    be reported (or acted on, by halving the chunk) as a timeout."""
    with connection.cursor() as c:
        c.execute("SELECT pg_backend_pid()")
        pid = c.fetchone()[0]
    canceller = psycopg2.connect(**connection.get_connection_params())
    canceller.autocommit = True
    timer = threading.Timer(0.5, _cancel, args=(canceller, pid))
    timer.start()
    try:
        with pytest.raises(DatabaseError) as caught, connection.cursor() as c:
            c.execute("SELECT pg_sleep(10)")
    finally:
        timer.join()
        canceller.close()
    assert retry.sqlstate(caught.value) == "57014"
    assert classify(caught.value) is ErrorKind.QUERY_CANCELLED
    assert retry.describe(caught.value)[1] == "query_cancelled (SQLSTATE 57014)"


def _error_of_a_terminated_connection() -> Any:
    """What the next query raises after another session terminated this connection."""
    with connection.cursor() as c:
        c.execute("SELECT pg_backend_pid()")
        pid = c.fetchone()[0]
    killer = psycopg2.connect(**connection.get_connection_params())
    try:
        killer.autocommit = True
        with killer.cursor() as c:
            c.execute("SELECT pg_terminate_backend(%s)", [pid])
    finally:
        killer.close()
    try:
        with pytest.raises(DatabaseError) as caught, connection.cursor() as c:
            c.execute("SELECT 1")
    finally:
        connection.close()
    return caught


def _cancel(conn: Any, pid: int) -> None:
    with conn.cursor() as c:
        c.execute("SELECT pg_cancel_backend(%s)", [pid])


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_classify__real_terminated_connection_is_connection_lost() -> None:
    caught = _error_of_a_terminated_connection()
    assert classify(caught.value) is ErrorKind.CONNECTION_LOST


# -- the retry policy ----------------------------------------------------------------------


class _Recorder:
    def __init__(self) -> None:
        self.sleeps: list[float] = []
        self.before: list[int] = []

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)

    def before_sleep(self, state: RetryCallState) -> None:
        self.before.append(state.attempt_number)


def _policy(rec: _Recorder, *, max_attempts: int = 5, max_wait: float = 30.0, event=None):
    return retry.policy(
        max_attempts=max_attempts,
        max_wait=max_wait,
        sleep=rec.sleep,
        before_sleep=rec.before_sleep,
        stop_event=event or threading.Event(),
    )


def _deadlock() -> Exception:
    return _wrapped(OperationalError, _DriverError("deadlock detected", pgcode="40P01"))


def _failing(errors: list[BaseException], result: Any = "done"):
    calls: list[int] = []

    def attempt() -> Any:
        calls.append(1)
        if errors:
            raise errors.pop(0)
        return result

    return attempt, calls


def test_policy__retries_transient_errors_then_returns_the_result() -> None:
    rec = _Recorder()
    attempt, calls = _failing([_deadlock(), _deadlock()])
    assert _policy(rec)(attempt) == "done"
    assert len(calls) == 3
    assert len(rec.sleeps) == 2
    assert rec.before == [1, 2]


def test_policy__does_not_retry_a_permanent_error() -> None:
    rec = _Recorder()
    error = ValueError("the job's code is broken")
    attempt, calls = _failing([error])
    with pytest.raises(ValueError) as caught:
        _policy(rec)(attempt)
    assert caught.value is error
    assert len(calls) == 1
    assert rec.sleeps == []


def test_policy__gives_up_after_max_attempts_with_the_original_error() -> None:
    rec = _Recorder()
    errors: list[BaseException] = [_deadlock() for _ in range(10)]
    last = errors[3]
    attempt, calls = _failing(errors)
    with pytest.raises(OperationalError) as caught:
        _policy(rec, max_attempts=4)(attempt)
    assert caught.value is last
    assert len(calls) == 4


def test_policy__retries_a_unique_violation_only_once() -> None:
    rec = _Recorder()
    errors: list[BaseException] = [
        _wrapped(IntegrityError, _DriverError("duplicate key", pgcode="23505")) for _ in range(5)
    ]
    attempt, calls = _failing(errors)
    with pytest.raises(IntegrityError):
        _policy(rec, max_attempts=10)(attempt)
    assert len(calls) == 2


def test_policy__stops_retrying_once_a_stop_is_requested() -> None:
    rec = _Recorder()
    event = threading.Event()
    event.set()
    attempt, calls = _failing([_deadlock(), _deadlock()])
    with pytest.raises(OperationalError):
        _policy(rec, event=event)(attempt)
    assert len(calls) == 1


def test_policy__waits_grow_exponentially_and_are_capped() -> None:
    rec = _Recorder()
    attempt, _ = _failing([_deadlock() for _ in range(7)])
    _policy(rec, max_attempts=8, max_wait=1.0)(attempt)
    assert len(rec.sleeps) == 7
    assert 0.2 <= rec.sleeps[0] <= 0.4  # 0.2 s plus up to 0.2 s of jitter
    assert 0.8 <= rec.sleeps[2] <= 1.0
    assert all(0 < s <= 1.0 for s in rec.sleeps)
    assert rec.sleeps[-1] == 1.0


# -- describing an error for the run record and the events -----------------------------


def test_describe__sqlstate_error_keeps_condition_and_names_never_the_message() -> None:
    diag = SimpleNamespace(
        constraint_name="testapp_item_token_key", table_name="testapp_item", column_name=None
    )
    secret = "6f1c1f7e-0000-4000-8000-000000000001"
    cause = _DriverError(
        f"duplicate key value violates unique constraint\nDETAIL: Key (token)=({secret})",
        pgcode="23505",
        diag=diag,
    )
    error_class, message = describe(_wrapped(IntegrityError, cause))
    assert error_class == f"{__name__}._DriverError"
    assert message == (
        "unique_violation (SQLSTATE 23505) on constraint testapp_item_token_key, table testapp_item"
    )
    assert secret not in message


def test_describe__permanent_sqlstate_error_is_a_database_error() -> None:
    cause = _DriverError("invalid input syntax for type uuid: 'leaked-value'", pgcode="22P02")
    _, message = describe(_wrapped(DatabaseError, cause))
    assert message == "database error (SQLSTATE 22P02)"


def test_describe__other_errors_keep_their_first_line_truncated() -> None:
    error_class, message = describe(ValueError("first line\nsecond line"))
    assert (error_class, message) == ("builtins.ValueError", "first line")
    _, long = describe(RuntimeError("x" * 1_000))
    assert len(long) == 300
    assert long.endswith("...")


def test_describe__error_without_a_message_is_named_by_its_class() -> None:
    assert describe(KeyError()) == ("builtins.KeyError", "KeyError")


@pytest.mark.postgres
@pytest.mark.django_db
def test_describe__real_unique_violation_does_not_quote_the_token() -> None:
    token = uuid.uuid4()
    Item.objects.create(title="a", token=token)
    with pytest.raises(IntegrityError) as caught, transaction.atomic():
        Item.objects.create(title="b", token=token)
    assert str(token) in str(caught.value)  # the database quotes it...
    error_class, message = describe(caught.value)
    assert str(token) not in message  # ...the description does not
    assert error_class == "psycopg2.errors.UniqueViolation"
    assert message.startswith("unique_violation (SQLSTATE 23505) on constraint ")
    assert "table testapp_item" in message


# -- structural errors: the server's message names objects, never values ----------------


def _real_error(sql: str, params: list[Any] | None = None) -> DatabaseError:
    """The error the database really raises for ``sql`` (rolled back with its savepoint)."""
    with pytest.raises(DatabaseError) as caught, transaction.atomic(), connection.cursor() as c:
        c.execute(sql, params)
    return caught.value


@pytest.mark.postgres
@pytest.mark.django_db
@pytest.mark.parametrize(
    ("sql", "code", "primary"),
    [
        (
            "SELECT * FROM testapp_item_renamed",
            "42P01",
            'relation "testapp_item_renamed" does not exist',
        ),
        (
            "SELECT no_such_column FROM testapp_item",
            "42703",
            'column "no_such_column" does not exist',
        ),
        (
            "SELECT no_such_function(id) FROM testapp_item",
            "42883",
            "function no_such_function(bigint) does not exist",
        ),
    ],
    ids=["undefined-table", "undefined-column", "undefined-function"],
)
def test_describe__structural_error_shows_the_servers_message(
    sql: str, code: str, primary: str
) -> None:
    _, message = describe(_real_error(sql))
    assert message == f"database error (SQLSTATE {code}): {primary}"


@pytest.mark.postgres
@pytest.mark.django_db
def test_describe__missing_privilege_names_the_table() -> None:
    role = f"batchjobs_test_{uuid.uuid4().hex[:12]}"
    with connection.cursor() as c:  # rolled back with the test's transaction, role and all
        c.execute(f'CREATE ROLE "{role}"')
    error = _real_error(f'SET LOCAL ROLE "{role}"; SELECT token FROM testapp_item')
    _, message = describe(error)
    assert message == ("database error (SQLSTATE 42501): permission denied for table testapp_item")


@pytest.mark.postgres
@pytest.mark.django_db
@pytest.mark.parametrize(
    ("sql", "code"),
    [
        ("SELECT %s::uuid", "22P02"),  # invalid input syntax: quotes the input
        ("SELECT 1 %s", "42601"),  # a syntax error quotes the query text near it
    ],
    ids=["invalid-input", "syntax-error"],
)
def test_describe__messages_that_quote_values_are_never_shown(sql: str, code: str) -> None:
    secret = "s3cret-token-value"
    error = _real_error(sql, [secret])
    assert secret in str(error)  # the database quotes it...
    _, message = describe(error)
    assert message == f"database error (SQLSTATE {code})"  # ...the description does not


@pytest.mark.postgres
@pytest.mark.django_db
def test_explain__real_unique_violation_on_the_token_never_shows_the_token() -> None:
    token = uuid.uuid4()
    Item.objects.create(title="a", token=token)
    with pytest.raises(IntegrityError) as caught, transaction.atomic():
        Item.objects.create(title="b", token=token)
    error = retry.explain(caught.value, doing="Could not do it")
    assert str(token) not in str(error)
    assert str(token).replace("-", "") not in str(error)
    assert str(error).startswith("Could not do it: unique_violation (SQLSTATE 23505) on ")
    assert error.exit_code == 1


# -- explain: which library error, and so which exit code -------------------------------


@pytest.mark.django_db
def test_explain__missing_table_is_a_schema_mismatch_exit_2() -> None:
    error = retry.explain(
        _real_error("SELECT * FROM testapp_item_renamed"), doing="Could not claim", after="Z."
    )
    assert isinstance(error, SchemaMismatch)
    assert error.exit_code == 2
    said = (
        'database error (SQLSTATE 42P01): relation "testapp_item_renamed" does not exist'
        if connection.vendor == "postgresql"
        else "no such table: testapp_item_renamed"
    )
    assert str(error) == (
        f"Could not claim: {said}. The database's tables do not match the code: run `python "
        "manage.py migrate` (if the migrations are recorded but the tables are missing, "
        "`migrate APP zero --fake` first). Z."
    )


@pytest.mark.postgres
@pytest.mark.django_db
def test_explain__missing_privilege_is_exit_77_and_names_the_table() -> None:
    role = f"batchjobs_test_{uuid.uuid4().hex[:12]}"
    with connection.cursor() as c:
        c.execute(f'CREATE ROLE "{role}"')
        c.execute(f'GRANT SELECT ON batchjobs_jobrun TO "{role}"')
    error = retry.explain(
        _real_error(f'SET LOCAL ROLE "{role}"; SELECT 1 FROM batchjobs_jobrun FOR UPDATE'),
        doing="Nothing was asked",
    )
    assert isinstance(error, InsufficientPrivilege)
    assert (error.exit_code, error.table) == (77, "batchjobs_jobrun")
    assert str(error) == (
        "Nothing was asked: database error (SQLSTATE 42501): permission denied for table "
        "batchjobs_jobrun."
    )


@pytest.mark.django_db(transaction=True)  # the other session must see the row
def test_explain__lock_contention_is_busy_exit_75() -> None:
    item = Item.objects.create(title="a")
    contention = Contention()
    contention.hold(item.pk)
    try:
        with pytest.raises(OperationalError) as caught, transaction.atomic():
            contention.collide(item.pk)
    finally:
        contention.release()
    error = retry.explain(caught.value, doing="Could not claim")
    assert isinstance(error, DatabaseBusy)
    assert error.exit_code == 75
    assert str(error).endswith("; try again in a moment.")


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_explain__only_a_lost_connection_is_unavailable_exit_69() -> None:
    caught = _error_of_a_terminated_connection()
    error = retry.explain(caught.value, doing="Could not claim")
    assert isinstance(error, DatabaseUnavailable)
    assert error.exit_code == 69
    assert str(error).startswith("Could not claim: the database connection was lost (")


def test_explain__anything_else_says_what_happened_exit_1() -> None:
    cause = _DriverError("new row violates check constraint", pgcode="23514")
    error = retry.explain(_wrapped(IntegrityError, cause), doing="Could not claim")
    assert isinstance(error, DatabaseFailure)
    assert (error.exit_code, str(error)) == (1, "Could not claim: database error (SQLSTATE 23514).")


def test_explain__read_only_sqlite_file_is_exit_77(tmp_path) -> None:
    path = tmp_path / "read-only.sqlite3"
    with contextlib.closing(sqlite3.connect(path)) as making:
        making.execute("CREATE TABLE t (x integer)")
    read_only = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        with pytest.raises(sqlite3.OperationalError) as caught:
            read_only.execute("INSERT INTO t VALUES (1)")
    finally:
        read_only.close()
    error = retry.explain(
        _wrapped(OperationalError, caught.value),  # as Django raises it
        doing="Could not claim",
        after="Nothing was changed.",
    )
    assert isinstance(error, InsufficientPrivilege)
    assert (error.exit_code, error.table) == (77, None)
    assert str(error) == (
        "Could not claim: attempt to write a readonly database: the SQLite file and its "
        "directory must be writable by the user running this. Nothing was changed."
    )
