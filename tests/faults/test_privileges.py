"""A database user without the privileges a command needs, for real: a PostgreSQL role
with LOGIN and only the grants a test gives it, used by real ``manage.py`` processes.

Such a user must get one line saying which privilege on which table is missing, with
exit 77 (EX_NOPERM): not 69, which tells a script to retry later, since waiting will not
grant anything; and nothing may be recorded.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator

import pytest
from django.db import connection

from batchjobs.models import JobRun, JobSlice, State
from tests.conftest import Cli
from tests.faults.helpers import live_run

pytestmark = pytest.mark.postgres

JOB = "rotate_ticket_tokens"
RUN_NEEDS = (
    "SELECT, INSERT and UPDATE on batchjobs_jobrun, batchjobs_jobslice and "
    "batchjobs_quarantinedrow, SELECT and UPDATE on the job's table, SELECT on "
    "django_migrations, and TEMPORARY on the database"
)
CONTROL_NEEDS = (
    "SELECT on django_migrations, and SELECT and UPDATE on batchjobs_jobrun and batchjobs_jobslice"
)
LIST_NEEDS = (
    "SELECT on django_migrations, batchjobs_jobrun, batchjobs_jobslice, "
    "batchjobs_quarantinedrow and batchjobs_effect"
)


@pytest.fixture
def role_url(cli: Cli) -> Iterator[Callable[[str | None], tuple[str, str]]]:
    """``make(grant)``: a new role holding ``grant`` (e.g. ``"SELECT"``, or ``None`` for
    nothing but the CONNECT every role has) on every table of the test database, and a
    DATABASE_URL that logs in as it (the local server trusts 127.0.0.1). Revoked and
    dropped after the test."""
    made: list[str] = []
    s = connection.settings_dict

    def make(grant: str | None) -> tuple[str, str]:
        name = f"batchjobs_limited_{uuid.uuid4().hex[:12]}"
        with connection.cursor() as c:
            c.execute(f'CREATE ROLE "{name}" LOGIN')
            made.append(name)
            if grant:
                c.execute(f'GRANT {grant} ON ALL TABLES IN SCHEMA public TO "{name}"')
        host, port = s.get("HOST") or "127.0.0.1", s.get("PORT") or 5432
        return name, f"postgres://{name}@{host}:{port}/{s['NAME']}"

    yield make
    with connection.cursor() as c:
        for name in made:
            c.execute(f'REVOKE ALL ON ALL TABLES IN SCHEMA public FROM "{name}"')
            c.execute(f'DROP ROLE "{name}"')


def test_runjob__read_only_user_is_told_what_to_grant_exit_77(cli, seed, role_url) -> None:
    seed(5)
    role, url = role_url("SELECT")
    result = cli.run("runjob", JOB, "--log-format", "json", env={"DATABASE_URL": url})
    assert result.returncode == 77, result.stderr
    (line,) = result.stderr.splitlines()
    assert line == (
        f"CommandError: Could not claim a run of {JOB}: database error (SQLSTATE 42501): "
        "permission denied for table batchjobs_jobrun. Nothing was changed. The database "
        f'user "{role}" has only SELECT on batchjobs_jobrun; it needs {RUN_NEEDS}.'
    )
    assert result.stdout == ""
    assert not JobRun.objects.exists()


def test_runjob__pause_by_a_read_only_user_is_one_line_exit_77(cli, role_url) -> None:
    live = live_run(JOB)
    role, url = role_url("SELECT")
    result = cli.run("runjob", JOB, "--pause", env={"DATABASE_URL": url})
    assert result.returncode == 77, result.stderr
    (line,) = result.stderr.splitlines()
    assert line == (
        f"CommandError: Nothing was asked of {JOB}: database error (SQLSTATE 42501): "
        "permission denied for table batchjobs_jobrun. The database user "
        f'"{role}" has only SELECT on batchjobs_jobrun; it needs {CONTROL_NEEDS}.'
    )
    live.refresh_from_db()
    assert (live.state, live.requested_action) == (State.RUNNING, "")


def test_listjobs__read_only_user_can_list(cli, role_url) -> None:
    JobRun.objects.create(job=JOB, state=State.SUCCEEDED, total=3, done=3)
    _, url = role_url("SELECT")
    result = cli.run("listjobs", env={"DATABASE_URL": url})
    assert result.returncode == 0, result.stderr
    assert "succeeded" in result.stdout


@pytest.mark.parametrize("detail", [[], [JOB], [JOB, "--json"]])
def test_listjobs__the_documented_grants_are_enough(cli, role_url, detail: list[str]) -> None:
    """listjobs with exactly what docs/operations.md lists for it: the run's detail reads
    its outside effects (batchjobs_effect) too."""
    JobRun.objects.create(job=JOB, state=State.SUCCEEDED, total=3, done=3)
    shared = JobRun.objects.create(job=JOB, state=State.SUCCEEDED, total=3, done=3, sliced=True)
    JobSlice.objects.create(run=shared, number=0, upper=3, cursor=3, planned=3, done=3)
    role, url = role_url(None)
    with connection.cursor() as c:
        c.execute(
            "GRANT SELECT ON django_migrations, batchjobs_jobrun, batchjobs_jobslice, "
            f'batchjobs_quarantinedrow, batchjobs_effect TO "{role}"'
        )
    result = cli.run("listjobs", *detail, env={"DATABASE_URL": url})
    assert result.returncode == 0, result.stderr
    assert "succeeded" in result.stdout


@pytest.mark.parametrize(
    ("command", "needs"),
    [
        (["runjob", JOB, "--log-format", "json"], RUN_NEEDS),
        (["runjob", JOB, "--pause"], CONTROL_NEEDS),
        (["listjobs"], LIST_NEEDS),
    ],
    ids=["runjob", "pause", "listjobs"],
)
def test_commands__user_with_no_table_privilege_exit_77(cli, role_url, command, needs) -> None:
    live = live_run(JOB)
    role, url = role_url(None)
    result = cli.run(*command, env={"DATABASE_URL": url})
    assert result.returncode == 77, result.stderr
    (line,) = result.stderr.splitlines()
    s = connection.settings_dict
    assert line == (
        "CommandError: Could not read the database's migrations (postgresql at "
        f"{s['HOST']}:{s['PORT']}/{s['NAME']}): database error (SQLSTATE 42501): permission "
        f'denied for table django_migrations. The database user "{role}" has no privilege '
        f"on django_migrations; it needs {needs}."
    )
    assert list(JobRun.objects.values_list("pk", "requested_action")) == [(live.pk, "")]


@pytest.fixture
def no_connect_for_public(cli: Cli) -> Iterator[None]:
    """CONNECT on the test database taken from PUBLIC (a superuser still connects), and
    given back after the test."""
    database = connection.settings_dict["NAME"]
    with connection.cursor() as c:
        c.execute(f'REVOKE CONNECT ON DATABASE "{database}" FROM PUBLIC')
    yield
    with connection.cursor() as c:
        c.execute(f'GRANT CONNECT ON DATABASE "{database}" TO PUBLIC')


@pytest.mark.usefixtures("no_connect_for_public")
@pytest.mark.parametrize("command", [["runjob", JOB], ["listjobs"]], ids=["runjob", "listjobs"])
def test_commands__user_without_connect_exit_77(cli, role_url, command: list[str]) -> None:
    _, url = role_url(None)
    result = cli.run(*command, env={"DATABASE_URL": url})
    assert result.returncode == 77, result.stderr
    (line,) = result.stderr.splitlines()
    s = connection.settings_dict
    assert line.startswith(
        f"CommandError: The database (postgresql at {s['HOST']}:{s['PORT']}/{s['NAME']}) "
        "refused the connection: connection to server at "
    )
    assert line.endswith(
        f'FATAL:  permission denied for database "{s["NAME"]}". Grant the user CONNECT on '
        "the database."
    )
