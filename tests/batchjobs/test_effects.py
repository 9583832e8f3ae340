"""Outside effects through the outbox: recorded with the chunk, delivered after its COMMIT
until the receiver has them, never by a rehearsal, never lost to a stop or a kill -9, and
every duplicate with the same idempotency key.

In process (the ``Runner``) and as real ``runjob`` processes, against a real HTTP receiver
in this test process (``tests.support.receiver``) that counts deliveries per key.
"""

from __future__ import annotations

import io
import signal
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from django.core.management import call_command
from django.db import connection
from structlog.testing import capture_logs

from batchjobs import Chunk, Delivery, ResumableJob, sentences
from batchjobs.exceptions import InvalidOption, JobDefinitionError
from batchjobs.exit_codes import ExitCode
from batchjobs.keyset import Keyset
from batchjobs.models import Effect, JobRun, State
from batchjobs.options import RunOptions
from batchjobs.runner import Runner
from tests.conftest import Cli, events_of, wait_for
from tests.faults.helpers import Processes
from tests.scenario_jobs.effects import NotifyingItems
from tests.support.receiver import Receiver
from tests.testapp.models import Item

JOB = NotifyingItems.name


@pytest.fixture
def in_process(receiver: Receiver, monkeypatch: pytest.MonkeyPatch) -> None:
    """The job in this process posts to the receiver."""
    monkeypatch.setenv("SCENARIO_RECEIVER_URL", receiver.url)


@pytest.fixture
def quick_retries(settings: Any) -> None:
    settings.BATCHJOBS_MAX_RETRY_WAIT_SECONDS = 0.2


def _keys(run_id: int) -> set[str]:
    return {f"{run_id}:{pk}" for pk in Item.objects.values_list("pk", flat=True)}


def _one_key_per_item(receiver: Receiver) -> None:
    """Every delivery of an item carries one and the same idempotency key."""
    seen: dict[Any, set[str]] = {}
    for key, body in list(receiver.deliveries):
        seen.setdefault(body["item"], set()).add(key)
    assert all(len(keys) == 1 for keys in seen.values()), seen


def _env(receiver: Receiver, **extra: str) -> dict[str, str]:
    return {"SCENARIO_RECEIVER_URL": receiver.url, **extra}


# -- in process ------------------------------------------------------------------------------


@pytest.mark.usefixtures("small_chunks", "registry_snapshot", "in_process")
def test_effects__every_committed_row_is_delivered_once_after_its_commit(
    seed_items: Callable[[int], int], receiver: Receiver
) -> None:
    seed_items(35)
    in_transaction: list[bool] = []

    class Checking(NotifyingItems):
        name = "test_effects_checking"

        def deliver(self, delivery: Delivery) -> None:
            in_transaction.append(connection.in_atomic_block)
            super().deliver(delivery)

    with capture_logs() as logs:
        outcome = Runner(Checking(), RunOptions(batch_size=10)).run()

    assert outcome.exit_code == 0, outcome.message
    assert receiver.counts() == dict.fromkeys(_keys(outcome.run_id), 1)
    assert in_transaction == [False] * 35, "an effect was delivered inside a transaction"
    effects = Effect.objects.filter(run_id=outcome.run_id)
    assert effects.count() == 35
    assert not effects.filter(delivered_at__isnull=True).exists()
    assert set(effects.values_list("attempts", flat=True)) == {1}
    # Each chunk's effects go out before the next chunk: 10 by the time of chunk 2's progress.
    names = [e["event"] for e in logs]
    assert names[-3:] == ["job.verified", "job.effects_delivered", "job.finished"]
    delivered = [e for e in logs if e["event"] == "job.effects_delivered"]
    assert [(e["delivered"], e["pending"]) for e in delivered] == [(35, 0)]


@pytest.mark.usefixtures("small_chunks", "quick_retries", "in_process")
def test_effects__a_receiver_down_for_a_while_gets_every_effect_once_it_is_back(
    seed_items: Callable[[int], int], receiver: Receiver
) -> None:
    seed_items(25)
    receiver.down = True
    back = threading.Timer(1.0, lambda: setattr(receiver, "down", False))
    back.start()
    try:
        with capture_logs() as logs:
            outcome = Runner(NotifyingItems(), RunOptions(batch_size=10)).run()
    finally:
        back.cancel()

    assert outcome.exit_code == 0, outcome.message
    assert receiver.refused > 0
    assert receiver.counts() == dict.fromkeys(_keys(outcome.run_id), 1)
    retries = [e for e in logs if e["event"] == "job.effect_retry"]
    assert retries and retries[0]["error"] == "HTTP Error 503: Service Unavailable"
    assert {e["key"] for e in retries} <= set(Item.objects.values_list("pk", flat=True))
    first = Effect.objects.filter(run_id=outcome.run_id).order_by("id").first()
    assert first is not None and first.attempts > 1 and first.last_error == ""
    assert JobRun.objects.get(pk=outcome.run_id).state == State.SUCCEEDED


@pytest.mark.django_db(transaction=True)
def test_runjob__dry_run_records_and_delivers_nothing(
    seed_items: Callable[[int], int], receiver: Receiver
) -> None:
    seed_items(30)
    out = io.StringIO()
    call_command("runjob", JOB, "--dry-run", "--sample", "20", stdout=out)
    assert "  outside effects a run would deliver: 20 (none delivered)" in out.getvalue()
    assert receiver.delivered() == 0
    assert not Effect.objects.exists()
    assert not JobRun.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_chunk__an_effect_from_a_job_without_deliver_names_the_fix(
    seed_items: Callable[[int], int],
) -> None:
    seed_items(1)
    chunk = Chunk(keys=[1], keyset=Keyset(Item.objects.all(), "pk", None))
    with pytest.raises(JobDefinitionError, match=r"has no deliver\(\); implement deliver"):
        chunk.effect(1, {})


def test_job__has_effects_when_it_implements_deliver() -> None:
    assert NotifyingItems.has_effects()
    assert not ResumableJob.has_effects()


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_runner__sql_side_is_refused_for_a_job_with_effects() -> None:
    # --sql-side does not call process(), so it would record no effect.
    with pytest.raises(InvalidOption, match="records outside effects"):
        Runner(NotifyingItems(), RunOptions(sql_side=True))


# -- real runjob processes ------------------------------------------------------------------


def test_runjob__a_stop_during_delivery_retries_exits_promptly_and_the_next_run_delivers_first(
    seed_items: Callable[[int], int], cli: Cli, procs: Processes, receiver: Receiver
) -> None:
    seed_items(30)
    receiver.down = True
    args = ("runjob", JOB, "--batch-size", "10", "--log-format", "json")
    live = procs.spawn(cli, *args, env=_env(receiver))
    live.wait_event("job.effect_retry", timeout=60)
    asked = time.monotonic()
    live.signal(signal.SIGTERM)
    code = live.wait(timeout=30)
    assert time.monotonic() - asked < 5, "the stop waited out a retry's backoff"
    assert code == 143, live.stderr
    run = JobRun.objects.get(job=JOB)
    assert run.state == State.INTERRUPTED  # never succeeded while effects were owed
    assert receiver.delivered() == 0
    owed = Effect.objects.filter(run=run, delivered_at__isnull=True).count()
    assert owed == 10  # the first chunk's: committed, recorded, not delivered
    assert live.events("job.effects_delivered")[-1]["pending"] == 10
    listed = cli.run("listjobs", JOB)
    attempts = Effect.objects.filter(run=run).order_by("id")[0].attempts
    assert (
        f"  effects       0 delivered, 10 owed; failing after {attempts} attempts: "
        "HTTP Error 503: Service Unavailable (urllib.error.HTTPError)\n"
    ) in listed.stdout

    receiver.down = False
    second = cli.run(*args, env=_env(receiver))
    assert second.returncode == 0, second.stderr
    assert receiver.counts() == dict.fromkeys(_keys(run.pk), 1)
    names = [e["event"] for e in events_of(second.stdout)]
    assert names.index("job.effects_delivered") < names.index("job.progress")
    first = next(e for e in events_of(second.stdout) if e["event"] == "job.effects_delivered")
    assert (first["delivered"], first["pending"]) == (10, 0)


def test_runjob__a_pause_is_seen_between_two_deliveries_and_resume_delivers_the_rest(
    seed_items: Callable[[int], int], cli: Cli, procs: Processes, receiver: Receiver
) -> None:
    seed_items(60)
    receiver.delay = 0.1  # one chunk of 60, then 6 s of deliveries that all succeed
    args = ("runjob", JOB, "--batch-size", "60", "--log-format", "json")
    live = procs.spawn(cli, *args, env=_env(receiver))
    wait_for(lambda: receiver.delivered() >= 5 or live.check_alive(), timeout=60)
    asked = cli.run("runjob", JOB, "--pause")
    assert asked.returncode == 0, asked.stderr
    answered = time.monotonic()
    assert live.wait(timeout=30) == ExitCode.PAUSED, live.stderr
    assert time.monotonic() - answered < 3, "the pause waited for every delivery"
    run = JobRun.objects.get(job=JOB)
    assert run.state == State.PAUSED
    assert Effect.objects.filter(run=run, delivered_at__isnull=True).exists()

    receiver.delay = 0.0
    resumed = cli.run(*args, "--resume", env=_env(receiver))
    assert resumed.returncode == 0, resumed.stderr
    assert receiver.counts() == dict.fromkeys(_keys(run.pk), 1)


def test_runjob__a_cancelled_run_gives_its_owed_effects_up(
    seed_items: Callable[[int], int], cli: Cli, procs: Processes, receiver: Receiver
) -> None:
    seed_items(20)
    receiver.down = True
    args = ("runjob", JOB, "--batch-size", "10", "--log-format", "json")
    live = procs.spawn(cli, *args, env=_env(receiver))
    live.wait_event("job.effect_retry", timeout=60)
    assert cli.run("runjob", JOB, "--cancel").returncode == 0
    assert live.wait(timeout=30) == ExitCode.CANCELLED, live.stderr
    cancelled = JobRun.objects.get(job=JOB)

    receiver.down = False
    fresh = cli.run(*args, env=_env(receiver))
    assert fresh.returncode == 0, fresh.stderr
    second = JobRun.objects.exclude(pk=cancelled.pk).get(job=JOB)
    # The new run delivers its own effects only, under its own run's keys.
    assert receiver.counts() == dict.fromkeys(_keys(second.pk), 1)
    assert Effect.objects.filter(run=cancelled, delivered_at__isnull=True).count() == 10


def test_kill9__between_a_delivery_and_its_record_redelivers_it_with_the_same_key(
    seed_items: Callable[[int], int], cli: Cli, receiver: Receiver
) -> None:
    seed_items(40)
    args = ("runjob", JOB, "--batch-size", "10", "--log-format", "json")
    killed = cli.run(*args, env=_env(receiver, BATCHJOBS_FAILPOINT="after_delivery:15"))
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert receiver.delivered() == 15
    fifteenth = receiver.deliveries[-1][0]
    run = JobRun.objects.get(job=JOB)
    assert run.state == State.RUNNING  # a killed run records nothing

    resumed = cli.run(*args, env=_env(receiver))
    assert resumed.returncode == 0, resumed.stderr
    counts = receiver.counts()
    assert set(counts) == _keys(run.pk), "an effect was lost"
    assert {key: n for key, n in counts.items() if n > 1} == {fifteenth: 2}
    _one_key_per_item(receiver)
    assert JobRun.objects.get(pk=run.pk).state == State.SUCCEEDED


def test_kill9__before_a_chunk_commits_its_effects_are_not_delivered(
    seed_items: Callable[[int], int], cli: Cli, receiver: Receiver
) -> None:
    seed_items(40)
    first_twenty = set(Item.objects.order_by("pk").values_list("pk", flat=True)[:20])
    args = ("runjob", JOB, "--batch-size", "10", "--log-format", "json")
    # Killed in the third chunk, after its work, before its checkpoint and COMMIT.
    killed = cli.run(*args, env=_env(receiver, BATCHJOBS_FAILPOINT="before_checkpoint:3"))
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    run = JobRun.objects.get(job=JOB)
    assert {body["item"] for _, body in receiver.deliveries} == first_twenty
    assert Effect.objects.filter(run=run).count() == 20  # the third chunk's rolled back

    resumed = cli.run(*args, env=_env(receiver))
    assert resumed.returncode == 0, resumed.stderr
    assert receiver.counts() == dict.fromkeys(_keys(run.pk), 1)


def test_kill9__repeated_kills_mid_run_lose_nothing(
    seed_items: Callable[[int], int], cli: Cli, procs: Processes, receiver: Receiver
) -> None:
    seed_items(120)
    args = ("runjob", JOB, "--batch-size", "10", "--log-format", "json")
    env = _env(receiver, SCENARIO_CHUNK_SLEEP="0.05")
    for target in (25, 70):
        live = procs.spawn(cli, *args, env=env)
        wait_for(lambda: receiver.delivered() >= target or live.check_alive(), timeout=60)  # noqa: B023
        live.kill9()
    final = cli.run(*args, env=_env(receiver))
    assert final.returncode == 0, final.stderr
    run = JobRun.objects.get(job=JOB)
    assert run.state == State.SUCCEEDED
    assert set(receiver.counts()) == _keys(run.pk), "an effect was lost"
    _one_key_per_item(receiver)
    # A kill lands between a delivery and its record at most once each.
    assert sum(n - 1 for n in receiver.counts().values()) <= 2


def test_sentences__say_what_is_owed_and_how_to_stop() -> None:
    assert sentences.effect_retry(
        {"key": 7, "attempt": 3, "error": "HTTP Error 503: Service Unavailable", "wait_seconds": 2}
    ) == (
        "Delivering the effect for key 7 failed (attempt 3: HTTP Error 503: Service "
        "Unavailable); retrying in 2.0s. Ctrl-C stops; the effect stays owed."
    )
    assert sentences.effects_delivered({"delivered": 30, "pending": 0}) == (
        "Delivered 30 outside effects; none owed."
    )
    assert sentences.effects_delivered({"delivered": 0, "pending": 10}) == (
        "Delivered 0 outside effects; 10 still owed, delivered first by the next run."
    )
