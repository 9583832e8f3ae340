"""``runjob`` and ``listjobs``: in process with ``call_command``, and as real processes
where the exit code and what reaches the terminal are the point."""

from __future__ import annotations

import io
import json
import os
import re
import socket
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any
from unittest import mock

import pytest
from django.apps import apps
from django.core.management import call_command
from django.core.management.base import CommandError, OutputWrapper
from django.utils import timezone

from batchjobs.listing import Follower
from batchjobs.models import JobRun, State
from tests.batchjobs.fakes import CloseByToken, NeverSettles
from tests.testapp.models import Item

JOB = "rotate_item_tokens"  # tests/testapp/jobs.py
DESCRIPTION = "Give every item a fresh random token (the library's tests' job)."


def _call(*args: str) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    call_command(*args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def _fails(*args: str) -> CommandError:
    with pytest.raises(CommandError) as caught:
        _call(*args)
    return caught.value


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _live_run(**fields: Any) -> JobRun:
    return JobRun.objects.create(
        job=JOB,
        state=State.RUNNING,
        owner_token="live",
        owner_host=socket.gethostname(),
        owner_pid=os.getppid(),  # a live process that is not this one
        heartbeat_at=timezone.now(),
        **fields,
    )


# -- runjob: what goes wrong before a run ------------------------------------------------


@pytest.mark.django_db
def test_runjob__unknown_job_is_a_usage_error() -> None:
    error = _fails("runjob", "rotate_itme_tokens")
    assert error.returncode == 2
    assert str(error).startswith("Unknown job 'rotate_itme_tokens'. Known jobs: ")
    assert JOB in str(error)


def test_runjob__unknown_job_on_the_command_line_is_one_line_and_exit_2(cli) -> None:
    result = cli.run("runjob", "rotate_itme_tokens")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    (line,) = result.stderr.splitlines()
    assert line.startswith("CommandError: Unknown job 'rotate_itme_tokens'. Known jobs: ")
    assert result.stdout == ""


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--batch-size", "0"], "argument --batch-size: 0 is not greater than zero"),
        (["--batch-size", "abc"], "argument --batch-size: 'abc' is not a whole number"),
        (["--sleep", "-1"], "argument --sleep: -1 is not a non-negative number of seconds"),
        (["--sleep", "nan"], "argument --sleep: nan is not a non-negative number of seconds"),
        (["--max-quarantined", "-2"], "argument --max-quarantined: -2 is negative"),
        (["--restart", "--resume"], "argument --resume: not allowed with argument --restart"),
    ],
    ids=["batch-size-0", "batch-size-abc", "sleep-negative", "sleep-nan", "quarantine", "modes"],
)
def test_runjob__bad_option_values_exit_2_with_the_argparse_message(cli, args, message) -> None:
    result = cli.run("runjob", JOB, *args)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stderr.splitlines()[-1] == f"manage.py runjob: error: {message}"
    assert result.stderr.startswith("usage: manage.py runjob")


def test_runjob__bad_option_value_in_process_is_a_command_error() -> None:
    error = _fails("runjob", JOB, "--batch-size", "0")
    assert str(error) == "Error: argument --batch-size: 0 is not greater than zero"


_TIMEOUTS = "PostgreSQL's timeouts are whole milliseconds from 1 to 2147483647"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--batch-size", "1,000,001"], "1000001 is over the maximum of 1,000,000"),
        (["--sample", "1000001"], "1000001 is over the maximum of 1,000,000"),
        (["--max-quarantined", "1000001"], "1000001 is over the maximum of 1,000,000"),
        (["--sleep", "604801"], "604801 is over the maximum of 604,800 seconds (7 days)"),
        (["--max-runtime", "1e6"], "1e6 is over the maximum of 604,800 seconds (7 days)"),
        (["--max-runtime", "0"], "0 is below the minimum of 0.001 seconds"),
        (["--target-chunk-seconds", "0"], "0 is below the minimum of 0.001 seconds"),
        (
            ["--target-chunk-seconds", "700000"],
            "700000 is over the maximum of 604,800 seconds (7 days)",
        ),
        (
            ["--lock-timeout", "0.0001"],
            f"0.0001 is below the minimum of 0.001 seconds ({_TIMEOUTS})",
        ),
        (
            ["--statement-timeout", "0.0009"],
            f"0.0009 is below the minimum of 0.001 seconds ({_TIMEOUTS})",
        ),
        (
            ["--lock-timeout", "2147484"],
            f"2147484 is over the maximum of 2,147,483.647 seconds ({_TIMEOUTS})",
        ),
        (
            ["--statement-timeout", "3e6"],
            f"3e6 is over the maximum of 2,147,483.647 seconds ({_TIMEOUTS})",
        ),
    ],
    ids=lambda v: "=".join(v) if isinstance(v, list) else "",
)
def test_runjob__every_number_has_bounds(args: list[str], message: str) -> None:
    option = args[0]
    error = _fails("runjob", JOB, *args)
    assert str(error) == f"Error: argument {option}: {message}"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--batch-size", "1000000"], None),
        (["--sample", "1000000"], None),
        (["--sleep", "604800"], None),
        (["--lock-timeout", "0.001"], None),
        (["--statement-timeout", "2147483.647"], None),
        (["--max-quarantined", "0"], None),
    ],
    ids=lambda v: "=".join(v) if isinstance(v, list) else "",
)
def test_runjob__the_bounds_themselves_are_accepted(args: list[str], message: None) -> None:
    from batchjobs.management.commands.runjob import Command  # noqa: PLC0415

    parser = Command().create_parser("manage.py", "runjob")
    options = vars(parser.parse_args([JOB, *args]))
    assert options[args[0][2:].replace("-", "_")] == float(args[1])


def test_listjobs__runs_has_bounds() -> None:
    assert str(_fails("listjobs", JOB, "--runs", "1001")) == (
        "Error: argument --runs: 1001 is over the maximum of 1,000"
    )
    assert str(_fails("listjobs", JOB, "--runs", "0")) == (
        "Error: argument --runs: 0 is not greater than zero"
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--batch-size", "99999999999999999999999", "--dry-run"],
            "argument --batch-size: 99999999999999999999999 is over the maximum of 1,000,000",
        ),
        (
            ["--lock-timeout", "0.0001"],
            f"argument --lock-timeout: 0.0001 is below the minimum of 0.001 seconds ({_TIMEOUTS})",
        ),
    ],
    ids=["batch-size", "lock-timeout"],
)
def test_runjob__out_of_bounds_on_the_command_line_is_exit_2(cli, args, message) -> None:
    result = cli.run("runjob", JOB, *args)
    assert result.returncode == 2
    assert result.stderr.splitlines()[-1] == f"manage.py runjob: error: {message}"
    assert "Traceback" not in result.stderr
    assert not JobRun.objects.exists()


@pytest.mark.parametrize("command", [["runjob", JOB], ["listjobs"]])
def test_commands__database_down_is_one_line_and_exit_69(cli, command) -> None:
    port = _closed_port()
    url = f"postgres://postgres:s3cret-pw@127.0.0.1:{port}/batchjobs"
    result = cli.run(*command, env={"DATABASE_URL": url})
    assert result.returncode == 69
    assert "Traceback" not in result.stderr
    (line,) = result.stderr.splitlines()
    assert line.startswith(
        f"CommandError: The database cannot be reached. (postgresql at 127.0.0.1:{port}/batchjobs)"
    )
    assert line.endswith("Check that the server is up and DATABASE_URL points at it.")
    assert "s3cret-pw" not in result.stderr


def test_commands__sqlite_file_that_cannot_be_opened_is_exit_69(cli, tmp_path) -> None:
    url = f"sqlite:///{tmp_path}/missing-dir/db.sqlite3"
    result = cli.run("runjob", JOB, env={"DATABASE_URL": url})
    assert result.returncode == 69
    assert "Traceback" not in result.stderr
    (line,) = result.stderr.splitlines()
    assert "The database cannot be reached. (sqlite at " in line


@pytest.fixture
def silent_server() -> Iterator[int]:
    """A port on 127.0.0.1 that accepts connections and never says a word (a stuck proxy,
    a half-open firewall): the port of a database that hangs every client."""
    server = socket.create_server(("127.0.0.1", 0))
    held: list[socket.socket] = []

    def accept() -> None:
        while True:
            try:
                held.append(server.accept()[0])
            except OSError:  # the server socket was closed: the test is over
                return

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield server.getsockname()[1]
    server.close()
    thread.join(timeout=5)
    for conn in held:
        conn.close()


@pytest.mark.parametrize("command", [["runjob", JOB], ["listjobs"]])
def test_commands__database_that_never_answers_exits_69_after_the_connect_timeout(
    cli, silent_server: int, command: list[str]
) -> None:
    url = f"postgres://postgres:s3cret-pw@127.0.0.1:{silent_server}/batchjobs"
    started = time.monotonic()
    result = cli.run(*command, env={"DATABASE_URL": url}, timeout=60)
    assert time.monotonic() - started < 15
    assert result.returncode == 69, result.stderr
    (line,) = result.stderr.splitlines()
    assert line.startswith(
        "CommandError: The database cannot be reached. "
        f"(postgresql at 127.0.0.1:{silent_server}/batchjobs): "
    )
    assert "timeout expired. Nothing answered within 5 s: " in line
    assert "?connect_timeout=N in DATABASE_URL, or BATCHJOBS_CONNECT_TIMEOUT" in line
    assert "s3cret-pw" not in result.stderr


@pytest.mark.parametrize(
    ("query", "environment", "seconds"),
    [("", "2", 2), ("?connect_timeout=2", "30", 2)],
    ids=["environment", "url-wins"],
)
def test_commands__connect_timeout_is_set_by_the_environment_or_the_url(
    cli, silent_server: int, query: str, environment: str, seconds: int
) -> None:
    url = f"postgres://postgres@127.0.0.1:{silent_server}/batchjobs{query}"
    started = time.monotonic()
    result = cli.run(
        "listjobs", env={"DATABASE_URL": url, "BATCHJOBS_CONNECT_TIMEOUT": environment}
    )
    assert time.monotonic() - started < seconds + 4
    assert result.returncode == 69, result.stderr
    assert f"Nothing answered within {seconds} s" in result.stderr


@pytest.mark.parametrize(
    ("url", "part"),
    [
        ("postgres//u:s3cret-pw@h/db", "it does not start with a scheme and '://'"),
        ("postgres://u:s3cret-pw@h:abc/db", "its port (after the host's last ':') is not a"),
        ("postgres://u:s3cret-pw@[::1/x", "its host is not a name, an IPv4 address or an"),
        ("postgres://u:s3c/ret-pw@h/db", "its port (after the host's last ':') is not a"),
        ("postgress://u:s3cret-pw@h/db", "its scheme 'postgress' is not one of postgres,"),
        ("postgres://u:s3cret-pw@h", "it names no database (add /NAME after the host)"),
        ("", "it is set but empty (unset it to use the local SQLite file"),
    ],
    ids=["no-scheme", "port", "ipv6", "unencoded-slash", "scheme", "no-name", "empty"],
)
@pytest.mark.parametrize("command", [["runjob", JOB], ["listjobs"]])
def test_commands__malformed_database_url_is_one_line_and_exit_2(
    cli, url: str, part: str, command: list[str]
) -> None:
    result = cli.run(*command, env={"DATABASE_URL": url})
    assert result.returncode == 2, result.stderr
    (line,) = result.stderr.splitlines()
    assert line.startswith(f"ImproperlyConfigured: DATABASE_URL is malformed: {part}")
    assert "s3cret" not in result.stderr and "ret-pw" not in result.stderr
    assert result.stdout == ""


def test_manage__still_honours_the_settings_option(cli) -> None:
    """manage.py catches settings errors around Django's own start-up, so --settings is
    applied before the settings are read."""
    result = cli.run(
        "diffsettings", "--settings", "tests.faults.settings_few_attempts", "--output", "unified"
    )
    assert result.returncode == 0, result.stderr
    assert "+ BATCHJOBS_MAX_ATTEMPTS = 3" in result.stdout.splitlines()


def test_commands__malformed_connect_timeout_is_one_line_and_exit_2(cli) -> None:
    result = cli.run("listjobs", env={"BATCHJOBS_CONNECT_TIMEOUT": "5s"})
    assert result.returncode == 2
    assert result.stderr == (
        "ImproperlyConfigured: BATCHJOBS_CONNECT_TIMEOUT must be a whole number of seconds, "
        "at least 1.\n"
    )


def test_commands__tables_missing_after_migrate_fake_say_how_to_recover(cli, tmp_path) -> None:
    """``migrate --fake`` records every migration and creates no table. Each command then
    names the missing tables and the way out, and that way out works."""
    env = {"DATABASE_URL": f"sqlite:///{tmp_path}/faked.sqlite3"}
    assert cli.run("migrate", "--fake", env=env).returncode == 0
    # Every installed app with tables, contenttypes first (while it is recorded, every
    # migrate ends by writing to its missing table).
    with_tables = {config.label for config in apps.get_app_configs() if config.models}
    labels = ["contenttypes", *sorted(with_tables - {"contenttypes"})]
    assert {"batchjobs", "testapp"} <= set(labels)
    advice = (
        "(a `migrate --fake`?). Run `python manage.py migrate APP zero --fake` for each APP "
        f"of {', '.join(labels)} (in that order), then `python manage.py migrate`."
    )
    where = f"sqlite at {tmp_path}/faked.sqlite3"

    listed = cli.run("listjobs", env=env)
    assert listed.returncode == 2, listed.stderr
    assert listed.stderr == (
        f"CommandError: The database ({where}) lacks the table(s) batchjobs_jobrun, "
        "batchjobs_quarantinedrow, though the migrations of batchjobs are recorded as "
        f"applied {advice}\n"
    )
    ran = cli.run("runjob", JOB, env=env)
    assert ran.returncode == 2, ran.stderr
    assert ran.stderr == (
        f"CommandError: The database ({where}) lacks the table(s) batchjobs_jobrun, "
        "batchjobs_quarantinedrow, testapp_item, though the migrations of batchjobs and "
        f"testapp are recorded as applied {advice}\n"
    )

    for app in labels:
        step = cli.run("migrate", app, "zero", "--fake", env=env)
        assert (step.returncode, step.stderr) == (0, "")
    assert cli.run("migrate", env=env).returncode == 0
    recovered = cli.run("runjob", JOB, "--log-format", "json", env=env)
    assert recovered.returncode == 0, recovered.stderr


# -- runjob: a run and its outcomes ------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_runjob__succeeds_with_json_events_and_a_one_line_summary(seed_items) -> None:
    seed_items(30)
    out, err = _call("runjob", JOB, "--log-format", "json", "--reason", "INC-1")
    run = JobRun.objects.get(job=JOB)
    assert err == f"Run #{run.pk} of {JOB} succeeded: 30 rows.\n"
    lines = [json.loads(line) for line in out.splitlines()]
    assert lines[0]["event"] == "job.started" and lines[-1]["event"] == "job.finished"
    assert all(e["job"] == JOB and e["run_id"] == run.pk for e in lines if "job" in e)
    assert (run.state, run.done, run.reason) == (State.SUCCEEDED, 30, "INC-1")


@pytest.mark.django_db(transaction=True)
def test_runjob__console_sentences_by_default_and_key_value_with_v2(seed_items) -> None:
    seed_items(30)
    out, _ = _call("runjob", JOB, "--log-format", "console", "--reason", "INC-1")
    run = JobRun.objects.get(job=JOB)
    lines = [line for line in out.replace("\r\x1b[2K", "\n").splitlines() if line]
    assert lines[0].startswith(f"Started run #{run.pk} of {JOB}: 30 rows, by ")
    assert lines[0].endswith(". Reason: INC-1.")
    assert lines[-1].startswith(f"Run #{run.pk} succeeded: 30 rows in ")

    out, _ = _call("runjob", JOB, "--log-format", "console", "-v", "2")
    assert "job.started" in out and "resumed=False" in out
    assert "Started run" not in out


@pytest.mark.django_db(transaction=True)
def test_runjob__failed_run_exits_1_with_the_reason(seed_items) -> None:
    seed_items(10)
    Item.objects.filter(pk=Item.objects.order_by("pk").first().pk).update(title="stuck")
    error = _fails("runjob", NeverSettles.name, "--log-format", "json")
    assert error.returncode == 1
    assert "verification found 1 rows still pending" in str(error)
    assert "checkpoint is kept" in str(error)


@pytest.mark.django_db(transaction=True)
def test_runjob__paused_run_needs_resume_exit_2() -> None:
    paused = JobRun.objects.create(job=JOB, state=State.PAUSED)
    error = _fails("runjob", JOB, "--log-format", "json")
    assert error.returncode == 2
    assert str(error) == (
        f"Run #{paused.pk} of {JOB} is paused. Continue it with `runjob {JOB} --resume`, "
        "or start over with --restart."
    )


@pytest.mark.django_db(transaction=True)
def test_runjob__live_run_elsewhere_exits_75() -> None:
    live = _live_run()
    error = _fails("runjob", JOB, "--log-format", "json")
    assert error.returncode == 75
    assert f"already running as run #{live.pk}" in str(error)


@pytest.mark.django_db(transaction=True)
def test_runjob__sql_side_for_a_job_without_expressions_exits_2(seed_items) -> None:
    seed_items(3)
    error = _fails("runjob", CloseByToken.name, "--sql-side", "--log-format", "json")
    assert error.returncode == 2
    assert str(error).startswith(f"{CloseByToken.name} has no SQL-side values on ")
    assert str(error).endswith("run it without --sql-side.")
    assert not JobRun.objects.exists()


# -- runjob: controlling a run from another terminal -------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("action", ["pause", "cancel"])
def test_runjob__pause_or_cancel_asks_the_live_run(action: str) -> None:
    live = _live_run()
    out, err = _call("runjob", JOB, f"--{action}")
    assert out == ""
    assert err.startswith(f"Asked run #{live.pk} of {JOB} (pid {os.getppid()} on ")
    live.refresh_from_db()
    assert live.requested_action == action


@pytest.mark.django_db
def test_runjob__pause_without_a_run_exits_2() -> None:
    error = _fails("runjob", JOB, "--pause")
    assert (error.returncode, str(error)) == (2, f"{JOB} has no unfinished run.")


@pytest.mark.django_db
def test_runjob__tune_applies_to_the_live_run() -> None:
    live = _live_run()
    _, err = _call("runjob", JOB, "--tune", "--batch-size", "250", "--sleep", "0.5")
    live.refresh_from_db()
    assert live.tuning == {"sleep": 0.5, "batch_size": 250}
    assert (
        err == f"Run #{live.pk} of {JOB} will use sleep=0.5, batch_size=250 from its next chunk.\n"
    )


@pytest.mark.django_db
def test_runjob__tune_with_nothing_to_change_exits_2() -> None:
    _live_run()
    error = _fails("runjob", JOB, "--tune")
    assert error.returncode == 2
    assert "--tune needs --sleep, --batch-size or --target-chunk-seconds" in str(error)


@pytest.mark.django_db
def test_runjob__tune_sleep_back_to_zero() -> None:
    live = _live_run(tuning={"sleep": 2.0})
    _call("runjob", JOB, "--tune", "--sleep", "0")
    live.refresh_from_db()
    assert live.tuning == {"sleep": 0.0}


# -- runjob --dry-run --------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_runjob__dry_run_reports_and_changes_nothing(seed_items) -> None:
    seed_items(40)
    before = dict(Item.objects.values_list("id", "token"))
    issued = dict(Item.objects.values_list("id", "token_issued_at"))
    out, _ = _call("runjob", JOB, "--dry-run", "--sample", "15")
    lines = out.splitlines()
    assert lines[:3] == [
        f"Dry run of {JOB} on 15 rows (rolled back):",
        "  rows that would change: 15",
        "  uniqueness or other error: none",
    ]
    assert re.fullmatch(r"  time per row: [\d,]+\.\d us", lines[3])
    assert re.fullmatch(
        r"  projected for 40 rows: (\d+h)?(\d+m)?\d+s \(one worker, no sleep\)", lines[4]
    )
    assert len(lines) == 5
    assert dict(Item.objects.values_list("id", "token")) == before
    assert dict(Item.objects.values_list("id", "token_issued_at")) == issued
    assert not JobRun.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_runjob__dry_run_of_an_empty_table() -> None:
    out, _ = _call("runjob", JOB, "--dry-run")
    assert out.splitlines() == [
        f"Dry run of {JOB} on 0 rows (rolled back):",
        "  rows that would change: 0",
        "  uniqueness or other error: none",
        "  no rows to rehearse on.",
    ]


@pytest.mark.django_db(transaction=True)
def test_runjob__dry_run_that_hits_a_collision_exits_1(seed_items) -> None:
    seed_items(10)
    before = dict(Item.objects.values_list("id", "token"))
    with pytest.raises(CommandError) as caught:
        call_command(
            "runjob",
            "fake_colliding_rotation",
            "--dry-run",
            stdout=io.StringIO(),
            stderr=io.StringIO(),
        )
    assert caught.value.returncode == 1
    assert str(caught.value).startswith("The rehearsal hit an error: ")
    assert "unique" in str(caught.value).lower()
    assert dict(Item.objects.values_list("id", "token")) == before


# -- listjobs ------------------------------------------------------------------------------------


def _table_rows(out: str) -> dict[str, str]:
    """``{job: its line}`` from the table (description lines left out)."""
    lines = out.splitlines()
    assert lines[0].split() == [
        "JOB",
        "RUN",
        "STATE",
        "DONE/TOTAL",
        "%",
        "ETA",
        "STARTED",
        "FINISHED",
    ]
    return {line.split()[0]: line.rstrip() for line in lines[1:] if not line.startswith(" ")}


@pytest.mark.django_db
def test_listjobs__table_shows_a_never_run_job() -> None:
    out, _ = _call("listjobs")
    rows = _table_rows(out)
    assert rows[JOB].split() == [JOB, "-", "never", "run"]
    assert f"  {JOB}: {DESCRIPTION}" in out.splitlines()


@pytest.mark.django_db(transaction=True)
def test_listjobs__table_shows_the_newest_run(seed_items: Callable[[int], int]) -> None:
    seed_items(1_234)
    _call("runjob", JOB, "--log-format", "json")
    rows = _table_rows(_call("listjobs")[0])
    fields = rows[JOB].split()
    newest = JobRun.objects.get(job=JOB)
    assert fields[:5] == [JOB, f"#{newest.pk}", "succeeded", "1,234/1,234", "100.0"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\d", fields[5])  # no ETA once finished; started
    assert len(fields) == 9  # started and finished are a date and a time each


@pytest.mark.django_db
def test_listjobs__table_shows_a_stalled_run_and_quarantined_rows() -> None:
    JobRun.objects.create(job=JOB, state=State.RUNNING, owner_token="gone", total=10, done=4)
    rows = _table_rows(_call("listjobs")[0])
    assert rows[JOB].split()[2:5] == ["stalled", "4/10", "40.0"]
    JobRun.objects.all().delete()
    JobRun.objects.create(job=JOB, state=State.QUARANTINED, total=10, done=10, quarantined=2)
    rows = _table_rows(_call("listjobs")[0])
    assert "succeeded_with_quarantine (2 quarantined)" in rows[JOB]


@pytest.mark.django_db
def test_listjobs__eta_of_a_run_at_work() -> None:
    _live_run(total=10, done=4, eta_seconds=125)
    rows = _table_rows(_call("listjobs")[0])
    assert rows[JOB].split()[2:6] == ["running", "4/10", "40.0", "2m05s"]
    (entry,) = [e for e in json.loads(_call("listjobs", "--json")[0]) if e["job"] == JOB]
    assert entry["runs"][0]["eta_seconds"] == 125


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("fields", "shown"),
    [
        ({"state": State.INTERRUPTED}, "interrupted"),
        ({"state": State.PAUSED}, "paused"),
        ({"state": State.FAILED}, "failed"),
        ({"state": State.RUNNING, "owner_token": "gone"}, "stalled"),  # its process is dead
    ],
    ids=["interrupted", "paused", "failed", "stalled"],
)
def test_listjobs__no_eta_for_a_run_that_is_not_at_work(fields: dict[str, Any], shown: str):
    """The stored ETA is the last one its process wrote; once that process stopped, the
    ETA is a guess about work nobody is doing."""
    JobRun.objects.create(job=JOB, total=10, done=4, eta_seconds=125, **fields)
    rows = _table_rows(_call("listjobs")[0])
    line = rows[JOB]
    assert line.split()[2:5] == [shown, "4/10", "40.0"]
    assert "2m05s" not in line
    (entry,) = [e for e in json.loads(_call("listjobs", "--json")[0]) if e["job"] == JOB]
    assert entry["runs"][0]["eta_seconds"] is None


@pytest.mark.django_db
def test_listjobs__json_lists_every_job_with_its_newest_run() -> None:
    older = JobRun.objects.create(job=JOB, state=State.SUCCEEDED, total=5, done=5)
    newer = JobRun.objects.create(
        job=JOB, state=State.FAILED, total=5, done=2, error_class="x.Y", error_message="boom"
    )
    out, _ = _call("listjobs", "--json")
    jobs = {entry["job"]: entry for entry in json.loads(out)}
    entry = jobs[JOB]
    assert entry["description"] == DESCRIPTION
    (run,) = entry["runs"]
    assert run["run_id"] == newer.pk != older.pk
    assert (run["state"], run["done"], run["total"], run["percent"]) == ("failed", 2, 5, 40.0)
    assert run["error"] == "boom (x.Y)"
    assert run["owner"] is None
    assert jobs[NeverSettles.name]["runs"] == []  # never run
    assert list(jobs) == sorted(jobs)


@pytest.mark.django_db
def test_listjobs__detail_of_one_job() -> None:
    JobRun.objects.create(job=JOB, state=State.SUCCEEDED, total=5, done=5, reason="INC-7")
    out, _ = _call("listjobs", JOB)
    lines = out.splitlines()
    assert lines[0] == f"{JOB}: {DESCRIPTION}"
    details = dict(re.split(r"\s+", line.strip(), maxsplit=1) for line in lines[3:] if line)
    assert details["state"] == "succeeded"
    assert details["progress"] == "5 of 5 (100.0%)"
    assert details["started"] == "INC-7"
    assert "error" not in details  # empty values are left out


@pytest.mark.django_db
def test_listjobs__detail_reads_as_short_lines() -> None:
    sessions = [
        {"by": "alice", "at": "2026-11-30T10:02:41+00:00", "host": "db-1", "pid": 812},
        {
            "by": "bob",
            "at": "2026-11-30T11:15:00+00:00",
            "host": "db-2",
            "pid": 900,
            "reason": "INC-9 resume",
        },
    ]
    run = JobRun.objects.create(
        job=JOB,
        state=State.QUARANTINED,
        total=1_000_000,
        done=999_998,
        chunks=1_000,
        retries=3,
        quarantined=2,
        started_by="alice",
        reason="INC-9",
        options={"batch_size": 1000, "vacuum": True, "reason": "INC-9"},
        verification={"checked": 1_000_000, "stale_found": 0, "reswept": 0, "remaining": 0},
        stats={
            "sessions": sessions,
            "table_bytes_before": 64 * 1024 * 1024,
            "table_bytes_after": 128 * 1024 * 1024,
        },
        high_water_mark=1_000_000,
        cursor=1_000_000,
    )
    JobRun.objects.filter(pk=run.pk).update(
        started_at=datetime(2026, 11, 30, 10, 2, 41, tzinfo=UTC)
    )
    for key in (100, 5000):
        run.quarantined_rows.create(key=key, error_class="builtins.ValueError", error_message="x")
    out, _ = _call("listjobs", JOB)
    assert out.splitlines()[2:] == [
        f"Run #{run.pk}",
        "  state         succeeded_with_quarantine",
        "  progress      999,998 of 1,000,000 (100.0%)",
        "  started       2026-11-30 10:02:41 by alice: INC-9",
        "  sessions      alice on db-1, 2026-11-30 10:02 (pid 812)",
        "                bob on db-2, 2026-11-30 11:15 (pid 900): INC-9 resume",
        "  retries       3 over 1,000 chunks",
        "  quarantined   2 rows (keys 100, 5000)",
        "  verification  Verified 1,000,000 rows: none still needs the job.",
        "  table         64.0 MiB -> 128.0 MiB",
        "  options       --batch-size 1000, --vacuum",
        "  keys          up to 1000000, committed through 1000000",
    ]


@pytest.mark.django_db
def test_listjobs__follow_without_an_unfinished_run_says_so_at_once() -> None:
    JobRun.objects.create(job=JOB, state=State.SUCCEEDED, total=5, done=5)
    out, _ = _call("listjobs", JOB, "--follow")
    assert out == f"{JOB} has no unfinished run: nothing to follow.\n"


@pytest.mark.django_db
def test_listjobs__follow_a_run_not_at_work_says_how_it_stands() -> None:
    run = JobRun.objects.create(job=JOB, state=State.PAUSED, total=40, done=10)
    out, _ = _call("listjobs", JOB, "--follow")
    assert out == (
        f"Run #{run.pk} of {JOB} is paused at 10 of 40 rows (25.0%). "
        f"Continue with: python manage.py runjob {JOB} --resume\n"
    )


@pytest.mark.django_db
def test_listjobs__follow_a_stalled_run_ends_at_once() -> None:
    run = JobRun.objects.create(job=JOB, state=State.RUNNING, total=40, done=10)
    out, _ = _call("listjobs", JOB, "--follow")
    assert out == (
        f"Run #{run.pk} of {JOB} is stalled at 10 of 40 rows (25.0%): its process is gone. "
        f"Continue with: python manage.py runjob {JOB}\n"
    )


@pytest.mark.django_db
def test_listjobs__follow_redraws_one_line_on_a_terminal_then_says_how_it_ended() -> None:
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    run = JobRun.objects.create(
        job=JOB, state=State.RUNNING, total=40, done=10, owner_token="t", owner_pid=1
    )
    steps = iter([{"done": 20}, {"done": 40, "state": State.SUCCEEDED, "owner_token": ""}])

    def sleep(seconds: float) -> None:  # the runner's chunks, between two reads
        assert seconds == Follower.INTERVAL_SECONDS
        JobRun.objects.filter(pk=run.pk).update(**next(steps))

    screen = Terminal()
    with mock.patch("batchjobs.control.alive", return_value=True):
        Follower(JOB, OutputWrapper(screen), sleep=sleep).follow()
    clear = "\r\x1b[2K"
    _, first, second = screen.getvalue().split(clear)
    assert first.startswith(f"{JOB} [######") and "10/40" in first and "\n" not in first
    live, final, end = second.split("\n")
    assert "20/40" in live
    assert (final, end) == (f"Run #{run.pk} of {JOB} succeeded: 40 of 40 rows (100.0%).", "")


def test_listjobs__follow_needs_a_name() -> None:
    assert str(_fails("listjobs", "--follow")) == (
        "--follow needs a job NAME, and does not go with --json."
    )


@pytest.mark.django_db
def test_listjobs__detail_of_a_never_run_job() -> None:
    out, _ = _call("listjobs", JOB)
    assert out.splitlines() == [f"{JOB}: {DESCRIPTION}", "  never run"]


@pytest.mark.django_db
def test_listjobs__detail_shows_as_many_runs_as_asked() -> None:
    for _ in range(4):
        JobRun.objects.create(job=JOB, state=State.SUCCEEDED)
    out, _ = _call("listjobs", JOB, "--runs", "3", "--json")
    (entry,) = json.loads(out)
    assert len(entry["runs"]) == 3


@pytest.mark.django_db
def test_listjobs__unknown_job_exits_2() -> None:
    error = _fails("listjobs", "nope")
    assert error.returncode == 2
    assert str(error).startswith("Unknown job 'nope'.")


# -- a broken job module -------------------------------------------------------------------

BROKEN = {"BATCHJOBS_EXTRA_JOB_PACKAGES": "tests.scenario_jobs,tests.batchjobs.broken_jobs"}
EXPLODING = (
    "module tests.batchjobs.broken_jobs.exploding failed to import: RuntimeError: boom at import"
)
MISSING = (
    "module tests.batchjobs.broken_jobs.missing_dependency failed to import: "
    "ModuleNotFoundError: No module named 'batchjobs_no_such_dependency'"
)


def test_commands__a_broken_job_module_leaves_the_rotation_working(cli, seed_items) -> None:
    """In the middle of an incident, someone's half-finished job module must not stop
    the other jobs (a token rotation, say); every command says which module is broken and
    why."""
    seed_items(12)
    rotated = cli.run("runjob", JOB, "--log-format", "json", env=BROKEN)
    assert rotated.returncode == 0, rotated.stderr
    run = JobRun.objects.get(job=JOB)
    assert rotated.stderr.splitlines() == [
        f"Warning: {EXPLODING} (its jobs are unavailable).",
        f"Warning: {MISSING} (its jobs are unavailable).",
        f"Run #{run.pk} of {JOB} succeeded: 12 rows.",
    ]

    listed = cli.run("listjobs", env=BROKEN)
    assert listed.returncode == 0, listed.stderr
    rows = _table_rows(listed.stdout)
    assert rows[JOB].split()[:3] == [JOB, f"#{run.pk}", "succeeded"]
    assert "broken_package_good_job" in rows
    assert listed.stdout.splitlines()[-2:] == [
        "Failed to import tests.batchjobs.broken_jobs.exploding: RuntimeError: boom at import "
        "(its jobs are not listed).",
        "Failed to import tests.batchjobs.broken_jobs.missing_dependency: ModuleNotFoundError: "
        "No module named 'batchjobs_no_such_dependency' (its jobs are not listed).",
    ]

    as_json = cli.run("listjobs", "--json", env=BROKEN)
    entries = json.loads(as_json.stdout)
    assert {e["module"]: e["error_class"] for e in entries if e["job"] is None} == {
        "tests.batchjobs.broken_jobs.exploding": "RuntimeError",
        "tests.batchjobs.broken_jobs.missing_dependency": "ModuleNotFoundError",
    }

    unknown = cli.run("runjob", "nope", env=BROKEN)
    assert unknown.returncode == 2
    (line,) = unknown.stderr.splitlines()
    assert line.startswith("CommandError: Unknown job 'nope'. Known jobs: ")
    assert line.endswith(f" Note: {EXPLODING}. Note: {MISSING}.")


# -- --traceback keeps the documented exit codes ---------------------------------------------


def _traceback_then(result: Any, message: str) -> None:
    """``--traceback`` shows where the error came from, and still says what it was."""
    assert result.stderr.startswith("Traceback (most recent call last):")
    assert result.stderr.splitlines()[-1].startswith(
        f"django.core.management.base.CommandError: {message}"
    )


@pytest.mark.parametrize("command", ["runjob", "listjobs"])
def test_commands__traceback_keeps_exit_2_for_an_unknown_job(cli, command: str) -> None:
    result = cli.run(command, "nope", "--traceback")
    assert result.returncode == 2, result.stderr
    _traceback_then(result, "Unknown job 'nope'.")


def test_runjob__traceback_keeps_exit_75_for_a_busy_run(cli) -> None:
    live = _live_run()
    result = cli.run("runjob", JOB, "--traceback", "--log-format", "json")
    assert result.returncode == 75, result.stderr
    _traceback_then(result, f"{JOB} is already running as run #{live.pk}")


def test_runjob__traceback_keeps_exit_5_for_quarantined_rows(cli, seed_items) -> None:
    seed_items(20)
    bad = Item.objects.order_by("pk")[5].pk
    result = cli.run(
        "runjob",
        "scenario_failing_item_rotation",  # tests/scenario_jobs/items.py
        "--traceback",
        "--log-format",
        "json",
        env={"SCENARIO_FAIL_KEYS": str(bad)},
    )
    assert result.returncode == 5, result.stderr
    assert "Traceback (most recent call last):" in result.stderr


def test_commands__traceback_keeps_exit_69_when_the_database_is_down(cli) -> None:
    url = f"postgres://postgres:s3cret-pw@127.0.0.1:{_closed_port()}/batchjobs"
    result = cli.run("listjobs", "--traceback", env={"DATABASE_URL": url})
    assert result.returncode == 69, result.stderr
    _traceback_then(result, "The database cannot be reached")
    assert "s3cret-pw" not in result.stderr
