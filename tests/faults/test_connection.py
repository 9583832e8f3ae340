"""The database connection goes away: the runner's backend terminated mid-run, the whole
server restarted mid-run, or no server at all at start."""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator

import pytest

from batchjobs.exit_codes import ExitCode
from batchjobs.models import JobRun, State
from tests.conftest import ROOT, Cli, wait_for
from tests.faults.helpers import (
    SLOW,
    assert_rotated_exactly_once,
    backends,
    free_port,
    runner_cli,
    runs_of,
    snapshot,
    wait_done,
)

ARGS = ("runjob", SLOW, "--batch-size", "100", "--log-format", "json")


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_pg_terminate_backend__the_run_reconnects_and_finishes_exactly_once(
    seed, cli, rotation_audit, procs
) -> None:
    seed(4_000)
    before = snapshot()
    app = "faults_terminated_runner"
    live = procs.spawn(runner_cli(cli, app), *ARGS, env={"SCENARIO_CHUNK_SLEEP": "0.05"})
    for target in (1_000, 2_500):
        wait_done(SLOW, target, live)
        pids = [pid for pid, *_ in backends(app)]
        assert len(pids) == 1, f"expected the runner's one connection, found {pids}"
        from django.db import connection  # noqa: PLC0415

        with connection.cursor() as c:
            c.execute("SELECT pg_terminate_backend(%s)", pids)
        wait_for(lambda pids=pids: backends(app) and [p for p, *_ in backends(app)] != pids)

    assert live.wait() == 0, live.stderr
    lost = [e for e in live.events("job.retry") if e["error_kind"] == "connection_lost"]
    assert len(lost) >= 2, live.events("job.retry")
    (run,) = runs_of(SLOW)
    assert (run.state, run.done, run.chunks) == (State.SUCCEEDED, 4_000, 40)
    assert run.retries >= 2
    assert_rotated_exactly_once(rotation_audit, before)


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    "url",
    [
        pytest.param("postgres://postgres@127.0.0.1:{port}/nowhere", id="postgres-closed-port"),
        pytest.param("sqlite:////nonexistent-faults-dir/db.sqlite3", id="sqlite-unopenable"),
    ],
)
@pytest.mark.parametrize("command", [("runjob", "rotate_ticket_tokens"), ("listjobs",)])
def test_database_down_at_start__one_clear_line_exit_69_nothing_recorded(
    seed, cli, url, command
) -> None:
    seed(100)
    before = snapshot()
    down = Cli(url.format(port=free_port()))
    result = down.run(*command)
    assert result.returncode == ExitCode.DATABASE_UNAVAILABLE, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert lines[0].startswith("CommandError: The database cannot be reached.")
    assert "Check that the server is up and DATABASE_URL points at it." in lines[0]
    assert result.stdout == ""
    assert not JobRun.objects.exists()
    assert snapshot() == before


# -- a whole server restart, on a private throwaway cluster -------------------------------
# The shared server on 5432 serves other sessions and test runs: restarting it would break
# them, so this test makes its own cluster from the same PostgreSQL binaries.


def _pg_binary(name: str) -> str | None:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return found[-1] if found else shutil.which(name)


@contextlib.contextmanager
def _private_cluster() -> Iterator[tuple[str, list[str], str]]:
    initdb, pg_ctl = _pg_binary("initdb"), _pg_binary("pg_ctl")
    if not initdb or not pg_ctl:
        pytest.skip(
            "PostgreSQL server binaries (initdb, pg_ctl) are not installed, so the restart "
            "test cannot make a private cluster: apt-get install postgresql"
        )
    prefix: list[str] = []
    workdir = tempfile.mkdtemp(prefix="faults-pg-")
    if os.geteuid() == 0:  # initdb and pg_ctl refuse root
        pwd.getpwnam("postgres")
        prefix = ["runuser", "-u", "postgres", "--"]
        shutil.chown(workdir, "postgres")
    data, port = os.path.join(workdir, "data"), free_port()
    pg_ctl_cmd = [*prefix, pg_ctl, "-D", data, "-l", os.path.join(workdir, "log")]
    try:
        subprocess.run(
            [*prefix, initdb, "-A", "trust", "-U", "postgres", "-D", data],
            check=True,
            capture_output=True,
        )
        options = f"-p {port} -k {workdir} -c listen_addresses=127.0.0.1 -c fsync=off"
        subprocess.run([*pg_ctl_cmd, "-o", options, "-w", "start"], check=True, capture_output=True)
        yield f"postgres://postgres@127.0.0.1:{port}/faults", pg_ctl_cmd, str(port)
    finally:
        subprocess.run(
            [*pg_ctl_cmd, "-m", "immediate", "-w", "stop"], check=False, capture_output=True
        )
        shutil.rmtree(workdir, ignore_errors=True)


# The audit trigger of tests/conftest.py, for a database the test process is not connected to.
_AUDIT_SQL = """
CREATE TABLE rotation_audit (id bigint PRIMARY KEY, n int NOT NULL);
CREATE FUNCTION rotation_audit_count() RETURNS trigger AS $$
BEGIN
  INSERT INTO rotation_audit (id, n) VALUES (NEW.id, 1)
  ON CONFLICT (id) DO UPDATE SET n = rotation_audit.n + 1;
  RETURN NEW;
END $$ LANGUAGE plpgsql;
CREATE TRIGGER rotation_audit AFTER UPDATE OF token ON tickets_ticket
FOR EACH ROW WHEN (OLD.token IS DISTINCT FROM NEW.token)
EXECUTE FUNCTION rotation_audit_count();
"""


def _psql(port: str, sql: str, db: str = "faults") -> str:
    return subprocess.run(
        ["psql", "-h", "127.0.0.1", "-p", port, "-U", "postgres", "-d", db, "-XAtc", sql],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()


def _manage(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return Cli(url).run(*args)


@pytest.mark.slow
@pytest.mark.postgres
def test_postgres_restart_mid_run__resumes_or_fails_clearly_then_exactly_once() -> None:
    with _private_cluster() as (url, pg_ctl, port):
        _psql(port, "CREATE DATABASE faults", db="postgres")
        for args in (("migrate", "--noinput", "-v", "0"), ("seed_tickets", "--total", "4000")):
            done = _manage(url, *args)
            assert done.returncode == 0, done.stderr
        _psql(port, _AUDIT_SQL)
        before = _psql(
            port, "SELECT string_agg(id || ':' || token, ',' ORDER BY id) FROM tickets_ticket"
        )

        runner = subprocess.Popen(
            [sys.executable, "manage.py", *ARGS],
            cwd=ROOT,
            env={**Cli(url).env(), "SCENARIO_CHUNK_SLEEP": "0.05"},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            wait_for(
                lambda: (
                    int(_psql(port, "SELECT coalesce(max(done), 0) FROM batchjobs_jobrun")) >= 1_000
                ),
                timeout=60,
            )
            subprocess.run(
                [*pg_ctl, "-m", "fast", "-w", "restart"], check=True, capture_output=True
            )
            wait_for(
                lambda: (
                    subprocess.run(
                        ["pg_isready", "-h", "127.0.0.1", "-p", port],
                        check=False,
                        capture_output=True,
                    ).returncode
                    == 0
                ),
                timeout=30,
            )
            out, err = runner.communicate(timeout=120)
        finally:
            if runner.poll() is None:
                runner.kill()
                runner.communicate()
        events = [e for e in map(_json, out.splitlines()) if e]
        lost = [e for e in events if e.get("event") == "job.retry"]
        assert any(e["error_kind"] == "connection_lost" for e in lost), (err, out[-2000:])
        if runner.returncode != 0:
            # Allowed: a clear failure, then the next run finishes.
            assert runner.returncode in (ExitCode.FAILED, ExitCode.DATABASE_UNAVAILABLE), err
            assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
            again = _manage(url, *ARGS)
            assert again.returncode == 0, again.stderr

        runs = _psql(
            port, "SELECT count(*), min(state), min(done), min(total) FROM batchjobs_jobrun"
        )
        assert runs == "1|succeeded|4000|4000", runs
        counts = _psql(
            port,
            "SELECT coalesce(a.n, 0), count(*) FROM tickets_ticket t "
            "LEFT JOIN rotation_audit a ON a.id = t.id GROUP BY 1",
        )
        assert counts == "1|4000", f"rotations per row (times|rows): {counts}"
        after = _psql(
            port, "SELECT string_agg(id || ':' || token, ',' ORDER BY id) FROM tickets_ticket"
        )
        old = dict(p.split(":") for p in before.split(","))
        new = dict(p.split(":") for p in after.split(","))
        assert old.keys() == new.keys()
        assert not set(old.values()) & set(new.values())


def _json(line: str) -> dict | None:
    import json  # noqa: PLC0415

    line = line.strip()
    return json.loads(line) if line.startswith("{") else None
