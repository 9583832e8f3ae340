"""Through PgBouncer in transaction-pooling mode, where consecutive transactions of one
client may run on different server connections and session state (advisory locks, SET)
does not carry over: the run still works exactly once, and a second runjob is refused."""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.db import connection

from batchjobs.exit_codes import ExitCode
from batchjobs.models import State
from tests.conftest import Cli
from tests.faults.helpers import (
    SLOW,
    assert_rotated_exactly_once,
    free_port,
    runs_of,
    snapshot,
    wait_done,
)

PGBOUNCER = os.environ.get("PGBOUNCER", "/usr/sbin/pgbouncer")


@contextlib.contextmanager
def _pgbouncer() -> Iterator[tuple[str, Path]]:
    """A private PgBouncer (transaction pooling) in front of the test database: its URL
    and its log."""
    binary = PGBOUNCER if os.path.exists(PGBOUNCER) else shutil.which("pgbouncer")
    if not binary:
        pytest.skip(
            f"PgBouncer is not installed (looked for {PGBOUNCER} and on PATH): the "
            "transaction-pooling test cannot run. Install it with: apt-get install pgbouncer"
        )
    s = connection.settings_dict
    user, db = s.get("USER") or "postgres", s["NAME"]
    host, port = s.get("HOST") or "127.0.0.1", s.get("PORT") or 5432
    workdir = Path(tempfile.mkdtemp(prefix="faults-pgbouncer-"))
    run_as: dict[str, str] = {}
    if os.geteuid() == 0:  # PgBouncer refuses to run as root
        pwd.getpwnam("postgres")
        shutil.chown(workdir, "postgres")
        run_as = {"user": "postgres", "group": "postgres"}
    listen = free_port()
    (workdir / "userlist.txt").write_text(f'"{user}" ""\n')
    (workdir / "pgbouncer.ini").write_text(
        f"""
[databases]
{db} = host={host} port={port} dbname={db}

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {listen}
unix_socket_dir =
auth_type = trust
auth_file = {workdir}/userlist.txt
pool_mode = transaction
default_pool_size = 4
max_client_conn = 50
ignore_startup_parameters = extra_float_digits
logfile = {workdir}/pgbouncer.log
"""
    )
    for f in workdir.iterdir():
        if run_as:
            shutil.chown(f, "postgres")
    bouncer = subprocess.Popen(
        [binary, str(workdir / "pgbouncer.ini")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        **run_as,  # type: ignore[arg-type]
    )
    url = f"postgres://{user}@127.0.0.1:{listen}/{db}"
    try:
        _wait_until_it_answers(url, bouncer, workdir)
        yield url, workdir / "pgbouncer.log"
    finally:
        bouncer.terminate()
        try:
            bouncer.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            bouncer.kill()
            bouncer.communicate()
        shutil.rmtree(workdir, ignore_errors=True)


def _wait_until_it_answers(url: str, bouncer: subprocess.Popen[str], workdir: Path) -> None:
    import psycopg2  # noqa: PLC0415

    deadline = time.monotonic() + 15
    while True:
        if bouncer.poll() is not None:
            log = (
                (workdir / "pgbouncer.log").read_text()
                if (workdir / "pgbouncer.log").exists()
                else ""
            )
            raise AssertionError(f"PgBouncer exited: {bouncer.stderr.read()}\n{log}")
        try:
            psycopg2.connect(url, connect_timeout=2).close()
            return
        except psycopg2.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_through_pgbouncer_transaction_pooling__exactly_once_and_second_run_refused(
    seed, rotation_audit, procs
) -> None:
    seed(3_000)
    before = snapshot()
    with _pgbouncer() as (url, log):
        bounced = Cli(url)
        args = ("runjob", SLOW, "--batch-size", "100", "--log-format", "json")
        first = procs.spawn(bounced, *args, env={"SCENARIO_CHUNK_SLEEP": "0.1"})
        run = wait_done(SLOW, 300, first)
        second = bounced.run(*args, timeout=30)
        assert first.alive()
        assert second.returncode == ExitCode.BUSY, second.stderr
        assert f"already running as run #{run.pk}" in second.stderr
        assert first.wait() == 0, first.stderr
        assert_rotated_exactly_once(rotation_audit, before)
        # ... and a fresh run through it, start to end, works too.
        again = bounced.run("runjob", SLOW, "--restart", "--batch-size", "500")
        assert again.returncode == 0, again.stderr
        logins = log.read_text().count(f"login attempt: db={connection.settings_dict['NAME']}")
        assert logins >= 3, "the runs did not go through PgBouncer"

    first_run, second_run = runs_of(SLOW)
    assert first_run.pk == run.pk
    assert (first_run.state, first_run.done, first_run.chunks) == (State.SUCCEEDED, 3_000, 30)
    assert (second_run.state, second_run.done) == (State.SUCCEEDED, 3_000)
    assert set(rotation_audit.counts().values()) == {2}
