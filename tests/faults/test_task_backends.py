"""Sliced runs worked by tasks of Django's Tasks framework, on each backend, with real worker
processes: ``db_worker`` (the database backend) and ``rqworker`` (RQ on Redis).

``runjob NAME --enqueue --workers 2`` creates the sliced run and enqueues two tasks; two
worker processes run them. Each task works one second (tests.faults.settings_tasks), then
enqueues its successor, so the run passes through many tasks. One worker is killed with
SIGKILL in the middle of a task: its task enqueues no successor and its slice is left
owned by a dead process, which the surviving worker's tasks take over (the short lease).
What must hold: the run succeeds, and every row present at the start was rotated exactly
once (the database-side audit trigger counts committed token changes).

Plus what needs no worker: the settings that pick the backend, and what enqueueing says,
including when Redis does not answer.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.test import override_settings

import settings as project_settings
from batchjobs.enqueue import enqueue_workers
from batchjobs.exceptions import TaskQueueUnavailable
from batchjobs.exit_codes import ExitCode
from batchjobs.models import JobRun, State
from tests.conftest import Cli, wait_for
from tests.faults.helpers import (
    ROTATE,
    SLOW,
    Live,
    assert_rotated_exactly_once,
    free_port,
    latest_run,
    snapshot,
)

ROWS = 6_000
BATCH = 50
SLOW_CHUNKS = {"SCENARIO_CHUNK_SLEEP": "0.05"}  # 120 chunks: about 6 s of work in all
# Tasks of one second and a lease of three (tests.faults.settings_tasks).
TASK_SETTINGS = {"DJANGO_SETTINGS_MODULE": "tests.faults.settings_tasks"}
REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
ROOT = Path(__file__).resolve().parent.parent.parent


# -- the settings: which backend ---------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "backend"),
    [
        ("", "django_tasks_db.DatabaseBackend"),
        ("database", "django_tasks_db.DatabaseBackend"),
        (" RQ ", "django_tasks_rq.RQBackend"),
        ("immediate", "ImmediateBackend"),
    ],
    ids=["unset", "database", "rq", "immediate"],
)
def test_settings__backend_is_picked_by_the_environment(
    monkeypatch: pytest.MonkeyPatch, value: str, backend: str
) -> None:
    monkeypatch.setenv("BATCHJOBS_TASKS_BACKEND", value)
    monkeypatch.setenv("REDIS_URL", "redis://redis.internal:6380/2")
    tasks, apps, rq_queues = project_settings._tasks_from_environment()
    assert tasks["default"]["BACKEND"].endswith(backend)
    assert tasks["default"]["QUEUES"] == ["default", "batchjobs"]
    if "rq" in value.lower():
        assert apps == ["django_rq"]
        assert rq_queues == {
            q: {"URL": "redis://redis.internal:6380/2", "DEFAULT_TIMEOUT": -1}
            for q in ("default", "batchjobs")
        }
    else:
        assert (apps, rq_queues) == ([], {})


def test_settings__redis_url_defaults_to_the_local_redis(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BATCHJOBS_TASKS_BACKEND", "rq")
    monkeypatch.delenv("REDIS_URL", raising=False)
    _, _, rq_queues = project_settings._tasks_from_environment()
    assert rq_queues["batchjobs"]["URL"] == "redis://127.0.0.1:6379/0"


def test_settings__unknown_backend_is_one_clear_sentence(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BATCHJOBS_TASKS_BACKEND", "celery")
    with pytest.raises(ImproperlyConfigured) as raised:
        project_settings._tasks_from_environment()
    assert str(raised.value) == (
        "BATCHJOBS_TASKS_BACKEND is 'celery', which is not one of database, rq, immediate."
    )


def test_commands__unknown_tasks_backend_is_one_line_and_exit_2(cli: Cli) -> None:
    result = cli.run("listjobs", env={"BATCHJOBS_TASKS_BACKEND": "sqs"})
    assert result.returncode == ExitCode.USAGE, result.stderr
    assert result.stderr == (
        "ImproperlyConfigured: BATCHJOBS_TASKS_BACKEND is 'sqs', which is not one of "
        "database, rq, immediate.\n"
    )
    assert result.stdout == ""


# -- enqueueing: where the tasks went, and an unreachable backend -------------------------


@pytest.mark.django_db(transaction=True)
def test_enqueue__database_backend_queues_the_tasks_and_says_how_to_run_them() -> None:
    from django_tasks_db.models import DBTaskResult  # noqa: PLC0415

    said = enqueue_workers(
        job_name="rotate_ticket_tokens", run_id=7, workers=3, argv=["--sql-side"]
    )
    assert said == (
        "Enqueued 3 tasks for run #7 of rotate_ticket_tokens on the database backend (queue "
        "batchjobs); start workers with: python manage.py db_worker --queue-name batchjobs; "
        "follow it with: python manage.py listjobs rotate_ticket_tokens --follow."
    )
    queued = list(DBTaskResult.objects.values_list("queue_name", "task_path", "args_kwargs"))
    assert (
        queued
        == [
            (
                "batchjobs",
                "batchjobs.tasks.work_on_run",
                {"args": ["rotate_ticket_tokens", 7, ["--sql-side"], None], "kwargs": {}},
            )
        ]
        * 3
    )


def test_enqueue__redis_that_does_not_answer_is_one_sentence_and_exit_69() -> None:
    """Nothing listens on the port: the connection is refused (a real one, no fake)."""
    pytest.importorskip("django_tasks_rq", reason="pip install -e '.[test]' installs it")
    dead = f"redis://127.0.0.1:{free_port()}/0"
    with (
        override_settings(
            TASKS={"default": {"BACKEND": "django_tasks_rq.RQBackend", "QUEUES": ["batchjobs"]}},
            RQ_QUEUES={"batchjobs": {"URL": dead}},
        ),
        pytest.raises(TaskQueueUnavailable) as raised,
    ):
        enqueue_workers(job_name="rotate_ticket_tokens", run_id=3, workers=4, argv=[])
    assert raised.value.exit_code == ExitCode.DATABASE_UNAVAILABLE
    message = str(raised.value)
    assert message.startswith("The rq task backend cannot be reached (ConnectionError: ")
    assert message.endswith(
        "; 0 of 4 tasks for run #3 of rotate_ticket_tokens were enqueued. Start it, then run: "
        "python manage.py runjob rotate_ticket_tokens --enqueue --workers 4."
    )
    assert "\n" not in message


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_runjob_enqueue__redis_that_does_not_answer__one_line_and_exit_69(seed, cli: Cli) -> None:
    seed(100)
    env = {"BATCHJOBS_TASKS_BACKEND": "rq", "REDIS_URL": f"redis://127.0.0.1:{free_port()}/0"}
    migrated = cli.run("migrate", "--noinput", env=env)  # django_rq's (no table)
    assert migrated.returncode == 0, migrated.stderr
    result = cli.run("runjob", ROTATE, "--enqueue", "--workers", "2", env=env)
    assert result.returncode == ExitCode.DATABASE_UNAVAILABLE, result.stderr
    (line,) = result.stderr.splitlines()
    run = latest_run(ROTATE)
    assert run is not None
    assert line.startswith("CommandError: The rq task backend cannot be reached (ConnectionError: ")
    assert line.endswith(
        f"; 0 of 2 tasks for run #{run.pk} of {ROTATE} were enqueued. Start it, then run: "
        f"python manage.py runjob {ROTATE} --enqueue --workers 2."
    )


def test_enqueue__a_queue_the_backend_does_not_list_names_the_setting() -> None:
    from batchjobs.exceptions import TasksMisconfigured  # noqa: PLC0415

    with (
        override_settings(BATCHJOBS_TASK_QUEUE="bulk"),
        pytest.raises(TasksMisconfigured, match=r"TASKS must list the queue 'bulk'"),
    ):
        enqueue_workers(job_name="rotate_ticket_tokens", run_id=3, workers=1, argv=[])


# -- real workers, one killed mid-task ------------------------------------------------------


def _enqueue_run(cli: Cli, env: dict[str, str], *, workers: int) -> JobRun:
    """``runjob SLOW --enqueue --workers N``: the sliced run, and N tasks on the backend."""
    result = cli.run(
        "runjob", SLOW, "--enqueue", "--workers", str(workers), "--batch-size", str(BATCH),
        env=env,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    run = latest_run(SLOW)
    assert run is not None
    assert f"run #{run.pk} of {SLOW}" in result.stdout + result.stderr
    return run


def _wait_until_rotated(audit: Any, at_least: int, *alive: Live) -> None:
    """Until the database has committed ``at_least`` rotations (the workers must live)."""

    def reached() -> bool:
        for live in alive:
            live.check_alive()
        return len(audit.counts()) >= at_least

    wait_for(reached, timeout=90, every=0.05)


def _wait_until_succeeded(run: JobRun, *alive: Live) -> JobRun:
    def finished() -> JobRun | None:
        for live in alive:
            live.check_alive()
        fresh = JobRun.objects.get(pk=run.pk)
        return fresh if fresh.state == State.SUCCEEDED else None

    try:
        return wait_for(finished, timeout=120, every=0.1)
    except AssertionError:
        fresh = JobRun.objects.get(pk=run.pk)
        raise AssertionError(
            f"run #{run.pk} is {fresh.state} at {fresh.done} of {fresh.total} after 120 s, "
            f"not succeeded; the workers said:\n"
            + "\n".join(live.stdout[-2000:] + live.stderr[-2000:] for live in alive)
        ) from None


DB_ENV = {**TASK_SETTINGS, **SLOW_CHUNKS, "BATCHJOBS_TASKS_BACKEND": "database"}


def _db_workers(cli: Cli, procs: Any, rotation_audit: Any) -> tuple[JobRun, Live, Live]:
    """The run enqueued, two ``db_worker`` processes on it (victim, survivor), a quarter of
    the rows rotated, and the victim in the middle of a task."""
    from django_tasks_db.models import DBTaskResult  # noqa: PLC0415

    run = _enqueue_run(cli, DB_ENV, workers=2)
    assert DBTaskResult.objects.filter(queue_name="batchjobs").count() == 2
    worker = ("db_worker", "--queue-name", "batchjobs", "--interval", "0.1")
    victim = procs.spawn(cli, *worker, "--worker-id", "victim", env=DB_ENV)
    survivor = procs.spawn(cli, *worker, "--worker-id", "survivor", env=DB_ENV)

    def victim_in_a_task() -> bool:
        victim.check_alive()
        return DBTaskResult.objects.filter(
            status="RUNNING", worker_ids__contains=["victim"]
        ).exists()

    _wait_until_rotated(rotation_audit, ROWS // 4, victim, survivor)
    wait_for(victim_in_a_task, timeout=30, every=0.02)
    return run, victim, survivor


@pytest.mark.postgres
@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_database_backend__a_worker_killed_mid_task__the_other_finishes_exactly_once(
    seed, cli: Cli, rotation_audit, procs
) -> None:
    from django_tasks_db.models import DBTaskResult  # noqa: PLC0415

    seed(ROWS)
    before = snapshot()
    run, victim, survivor = _db_workers(cli, procs, rotation_audit)
    victim.kill9()

    _wait_until_succeeded(run, survivor)
    tasks = DBTaskResult.objects.filter(queue_name="batchjobs")

    def drained() -> bool:
        # A successor enqueued while another task finished the run finds it succeeded.
        survivor.check_alive()
        return not tasks.filter(status="READY").exists() and (
            tasks.filter(status="RUNNING").count() == 1
        )

    wait_for(drained, timeout=30)
    survivor.signal(signal.SIGTERM)  # idle between tasks: db_worker exits at once
    assert survivor.wait(timeout=30) == 0, survivor.stderr

    # The killed task stays RUNNING for ever: no one finishes a dead worker's task row.
    assert list(tasks.filter(status="RUNNING").values_list("worker_ids", flat=True)) == [["victim"]]
    assert not tasks.filter(status="FAILED").exists(), [
        t.traceback for t in tasks.filter(status="FAILED")
    ]
    succeeded = list(tasks.filter(status="SUCCESSFUL").values_list("return_value", flat=True))
    assert len(succeeded) > 2, "no task handed over to a successor"
    assert all(r["run_id"] == run.pk for r in succeeded)
    assert [r["more"] for r in succeeded].count(False) >= 1
    assert JobRun.objects.filter(job=SLOW).count() == 1
    assert_rotated_exactly_once(rotation_audit, before)


@pytest.mark.postgres
@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_database_backend__sigterm_mid_task__the_worker_exits_and_the_next_one_goes_on(
    seed, cli: Cli, rotation_audit, procs
) -> None:
    """A deploy: the only db_worker gets SIGTERM in the middle of a task. The task's stopper
    takes it (the chunk in flight commits), the task enqueues its successor, then hands the
    signal to db_worker's own handler: the worker exits instead of taking the next task. The
    signal was for the worker, not the run: the run stays running, and the worker started
    after the deploy finishes it."""
    from django_tasks_db.models import DBTaskResult  # noqa: PLC0415

    seed(ROWS)
    before = snapshot()
    run = _enqueue_run(cli, DB_ENV, workers=1)
    worker = ("db_worker", "--queue-name", "batchjobs", "--interval", "0.1")
    # Tasks of five seconds: the signal lands while the task works, not in the moment
    # between its end and the next task's start.
    env = {**DB_ENV, "SCENARIO_TASK_MAX_SECONDS": "5"}
    old = procs.spawn(cli, *worker, "--worker-id", "before-deploy", env=env)

    def in_a_task() -> bool:
        old.check_alive()
        return DBTaskResult.objects.filter(status="RUNNING").exists()

    _wait_until_rotated(rotation_audit, ROWS // 4, old)
    wait_for(in_a_task, timeout=30, every=0.02)
    old.signal(signal.SIGTERM)
    assert old.wait(timeout=30) == 0, old.stderr

    last = DBTaskResult.objects.filter(worker_ids__contains=["before-deploy"]).latest("started_at")
    assert last.status == "SUCCESSFUL", last.traceback
    assert last.return_value["signal"] == "SIGTERM"
    assert JobRun.objects.get(pk=run.pk).state == State.RUNNING
    assert last.return_value["successor"] is not None, last.return_value
    assert DBTaskResult.objects.filter(status="READY").count() == 1

    new = procs.spawn(cli, *worker, "--worker-id", "after-deploy", env=DB_ENV)
    _wait_until_succeeded(run, new)
    new.signal(signal.SIGTERM)
    assert new.wait(timeout=30) == 0, new.stderr
    tasks = DBTaskResult.objects.filter(queue_name="batchjobs")
    assert set(tasks.values_list("status", flat=True)) == {"SUCCESSFUL"}
    assert_rotated_exactly_once(rotation_audit, before)


@pytest.fixture
def redis_queue() -> Iterator[tuple[str, str]]:
    """A Redis that answers (else a loud skip) and a queue of this test's own on it: its
    URL and the queue's name. The queue and its registries are emptied afterwards."""
    redis = pytest.importorskip("redis", reason="pip install -e '.[test]' installs it")
    connection = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2)
    try:
        connection.ping()
    except redis.exceptions.RedisError as error:
        pytest.skip(
            f"Redis does not answer at {REDIS_URL} ({error}): the RQ backend's test cannot "
            "run. Install and start it with: apt-get install redis-server && redis-server "
            "--daemonize yes (.ci/run does both), or point TEST_REDIS_URL at one."
        )
    name = f"batchjobs-test-{uuid.uuid4().hex[:12]}"
    try:
        yield REDIS_URL, name
    finally:
        for key in connection.scan_iter(f"rq:*{name}*"):
            connection.delete(key)
        connection.close()


def _horse(worker: Live) -> int | None:
    """The RQ worker's work horse: the child process it forks to run one job."""
    path = Path(f"/proc/{worker.pid}/task/{worker.pid}/children")
    children = path.read_text().split() if path.exists() else []
    return int(children[0]) if children else None


@pytest.mark.postgres
@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_rq_backend__a_worker_killed_mid_task__the_other_finishes_exactly_once(
    seed, cli: Cli, rotation_audit, procs, redis_queue: tuple[str, str]
) -> None:
    url, queue = redis_queue
    seed(ROWS)
    before = snapshot()
    env = {
        **TASK_SETTINGS,
        **SLOW_CHUNKS,
        "BATCHJOBS_TASKS_BACKEND": "rq",
        "REDIS_URL": url,
        "SCENARIO_TASK_QUEUE": queue,
    }
    # The rq backend adds the django_rq app, whose migrations (no table, its admin's
    # permissions) a database migrated without it has not had: as an operator would, migrate.
    migrated = cli.run("migrate", "--noinput", env=env)
    assert migrated.returncode == 0, migrated.stderr
    run = _enqueue_run(cli, env, workers=2)

    worker = ("rqworker", queue, "--job-class", "django_tasks_rq.Job")
    victim = procs.spawn(cli, *worker, "--name", f"{queue}-victim", env=env)
    survivor = procs.spawn(cli, *worker, "--name", f"{queue}-survivor", env=env)

    _wait_until_rotated(rotation_audit, ROWS // 4, victim, survivor)
    horse = wait_for(lambda: _horse(victim), timeout=30, every=0.01)
    # The worker first, so that it cannot fork another horse; then its horse, mid-task.
    victim.kill9()
    os.kill(horse, signal.SIGKILL)

    _wait_until_succeeded(run, survivor)
    import django_rq  # noqa: PLC0415

    with override_settings(RQ_QUEUES={queue: {"URL": url}}):
        rq_queue = django_rq.get_queue(queue)

        def drained() -> bool:
            # A successor enqueued while another task finished the run finds it succeeded.
            survivor.check_alive()
            return rq_queue.count == 0 and _horse(survivor) is None

        wait_for(drained, timeout=30)
        survivor.signal(signal.SIGTERM)
        survivor.wait(timeout=30)
        finished = rq_queue.finished_job_registry.get_job_ids()
        failed = rq_queue.failed_job_registry.get_job_ids()
    assert not failed, survivor.stderr[-3000:]
    assert len(finished) > 2, "no task handed over to a successor"
    assert JobRun.objects.filter(job=SLOW).count() == 1
    assert_rotated_exactly_once(rotation_audit, before)


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_immediate_backend__a_task_in_a_thread_that_is_not_the_main_one_works(
    seed, cli: Cli, rotation_audit
) -> None:
    """Signal handlers can only be installed on the main thread: a task run elsewhere (the
    immediate backend called from a thread, thread-pool workers) must still work the run to
    its end, through its successors (one-second tasks)."""
    seed(2_000)
    before = snapshot()
    code = textwrap.dedent(
        f"""
        import threading
        from django.core.management import call_command

        def enqueue():
            call_command(
                "runjob", {SLOW!r}, "--enqueue", "--workers", "2", "--batch-size", "{BATCH}"
            )

        thread = threading.Thread(target=enqueue)
        thread.start()
        thread.join()
        """
    )
    env = {**TASK_SETTINGS, **SLOW_CHUNKS, "BATCHJOBS_TASKS_BACKEND": "immediate"}
    result = subprocess.run(
        [sys.executable, "manage.py", "shell", "--no-imports", "-c", code],
        cwd=ROOT,
        env=cli.env(**env),
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    run = latest_run(SLOW)
    assert run is not None
    assert f"Ran 2 tasks for run #{run.pk} of {SLOW} on the immediate backend" in result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    assert run.state == State.SUCCEEDED
    assert_rotated_exactly_once(rotation_audit, before)
