"""Run a command with ``DATABASE_URL`` pointing at a PostgreSQL server.

Where the server comes from, in order:
1. ``DATABASE_URL``, when it is a postgres:// URL;
2. 127.0.0.1:5432 as user ``postgres``, when it answers;
3. a throwaway cluster made with the local ``initdb``/``pg_ctl`` and removed afterwards.
Otherwise it stops with a message saying how to provide one; it never skips silently.

(pytest-postgresql would do 3, but it depends on psycopg 3, which Django then prefers over
psycopg2: the suite would stop testing the driver production uses.)
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator

import psycopg2

LOCAL_URL = "postgres://postgres@127.0.0.1:5432/batchjobs"
HOW_TO = (
    "No PostgreSQL server for the PostgreSQL half of the suite.\n"
    "  - point at one:   make test DATABASE_URL=postgres://USER:PASSWORD@HOST:PORT/DBNAME\n"
    "  - or start the local one (Debian): pg_ctlcluster --skip-systemctl-redirect "
    "$(ls /etc/postgresql) main start\n"
    "  - or install the binaries (apt-get install postgresql) for a throwaway cluster."
)


def _answers(url: str) -> bool:
    try:
        psycopg2.connect(url.rsplit("/", 1)[0] + "/postgres", connect_timeout=3).close()
    except psycopg2.Error:
        return False
    return True


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _binary(name: str) -> str | None:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return found[-1] if found else shutil.which(name)


@contextlib.contextmanager
def _throwaway_cluster() -> Iterator[str | None]:
    initdb, pg_ctl = _binary("initdb"), _binary("pg_ctl")
    if not initdb or not pg_ctl:
        yield None
        return
    prefix: list[str] = []
    if os.geteuid() == 0:  # initdb refuses to run as root; use the postgres account
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            yield None
            return
        prefix = ["runuser", "-u", "postgres", "--"]
    workdir = tempfile.mkdtemp(prefix="batchjobs-pg-")
    if prefix:
        shutil.chown(workdir, "postgres")
    data, port = os.path.join(workdir, "data"), _free_port()
    subprocess.run(
        [*prefix, initdb, "-A", "trust", "-U", "postgres", "-D", data],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    options = f"-p {port} -k {workdir} -c listen_addresses=127.0.0.1 -c fsync=off"
    subprocess.run(
        [
            *prefix,
            pg_ctl,
            "-D",
            data,
            "-o",
            options,
            "-l",
            os.path.join(workdir, "log"),
            "-w",
            "start",
        ],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    try:
        print(f"Started a throwaway PostgreSQL on 127.0.0.1:{port}.", file=sys.stderr)
        yield f"postgres://postgres@127.0.0.1:{port}/batchjobs"
    finally:
        subprocess.run(
            [*prefix, pg_ctl, "-D", data, "-m", "fast", "-w", "stop"],
            stdout=subprocess.DEVNULL,
            check=False,
        )
        shutil.rmtree(workdir, ignore_errors=True)


def main(argv: list[str]) -> int:
    if not argv:
        print("usage: python -m tests.support.with_postgres COMMAND...", file=sys.stderr)
        return 2
    given = os.environ.get("DATABASE_URL", "")
    with contextlib.ExitStack() as stack:
        if given.startswith(("postgres://", "postgresql://")):
            url = given
        elif _answers(LOCAL_URL):
            url = LOCAL_URL
        else:
            url = stack.enter_context(_throwaway_cluster())
        if url is None:
            print(HOW_TO, file=sys.stderr)
            return 2
        shown = url.split("@")[-1]
        print(
            f"PostgreSQL for this run: {shown} (set DATABASE_URL to use another).", file=sys.stderr
        )
        return subprocess.call(argv, env={**os.environ, "DATABASE_URL": url})


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
