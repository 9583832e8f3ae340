"""How a run shared by workers stops and goes on: a signal to the coordinator, a kill -9 of
the coordinator alone, the job's code failing in one worker, --max-runtime, and a
single-process run continued by workers. Real processes; the database counts rotations.
"""

from __future__ import annotations

import os
import signal

import pytest
from django.db import connection

from batchjobs.exit_codes import ExitCode
from batchjobs.models import JobRun, JobSlice, State
from tests.conftest import wait_for
from tests.faults.helpers import (
    FAILING,
    ROTATE,
    SLOW,
    assert_rotated_exactly_once,
    backends,
    latest_run,
    runner_cli,
    snapshot,
    wait_done,
)
from tests.faults.test_workers import _children, _gone, _started_workers, _workers

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def _committed_once(audit, run: JobRun) -> None:
    """What the run counts as done is exactly what was rotated, each row once."""
    counts = audit.counts()
    assert set(counts.values()) <= {1}, "a row rotated twice"
    assert len(counts) == run.done, (len(counts), run.done)


@pytest.mark.postgres
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_to_the_coordinator_stops_every_worker_gracefully(
    seed, cli, rotation_audit, procs, signum
) -> None:
    seed(8_000)
    before = snapshot()
    group = _workers(cli, procs, 2, env={"SCENARIO_CHUNK_SLEEP": "0.03"})
    workers = _started_workers(group, 2)
    wait_done(SLOW, 1_000, group)
    group.signal(signum)
    code = group.wait(timeout=60)
    assert code == {signal.SIGINT: 130, signal.SIGTERM: 143}[signum], group.stderr
    run = latest_run(SLOW)
    assert run is not None and run.state == State.INTERRUPTED
    assert not any(_children(group.pid)) and all(not os.path.exists(f"/proc/{p}/cmdline") or
                                                  _gone(p) for p in workers)  # fmt: skip
    assert not JobSlice.objects.filter(run=run).exclude(owner_token="").exists()
    _committed_once(rotation_audit, run)
    last = group.stderr.strip().splitlines()[-1]
    assert f"Run #{run.pk} of {SLOW} interrupted by {signal.Signals(signum).name}" in last
    assert f"runjob {SLOW} --workers 2" in last
    # Interrupted events came from the workers (one of them recorded the run's end).
    assert group.events("job.interrupted")

    again = cli.run("runjob", SLOW, "--workers", "2", "--log-format", "json")
    assert again.returncode == 0, again.stderr
    assert_rotated_exactly_once(rotation_audit, before)


@pytest.mark.postgres
def test_kill_9_of_the_coordinator_alone_stops_its_workers__a_plain_runjob_finishes(
    seed, cli, rotation_audit, procs
) -> None:
    seed(8_000)
    before = snapshot()
    group = _workers(cli, procs, 2, env={"SCENARIO_CHUNK_SLEEP": "0.03"})
    workers = _started_workers(group, 2)
    wait_done(SLOW, 1_000, group)
    group.kill9()
    # Told by the parent-death signal, the workers stop at their next chunk boundary.
    wait_for(lambda: all(_gone(p) for p in workers), timeout=30)
    run = latest_run(SLOW)
    assert run is not None and run.state == State.INTERRUPTED, run.state
    _committed_once(rotation_audit, run)

    # A sliced run stays sliced: runjob without --workers continues it with one worker.
    rest = cli.run("runjob", SLOW, "--log-format", "json")
    assert rest.returncode == 0, rest.stderr
    assert JobRun.objects.get(pk=run.pk).state == State.SUCCEEDED
    assert_rotated_exactly_once(rotation_audit, before)


@pytest.mark.postgres
def test_the_jobs_code_failing_in_one_worker_fails_the_run_and_keeps_the_checkpoint(
    seed, cli, rotation_audit, procs
) -> None:
    seed(6_000)
    before = snapshot()
    bad = sorted(before)[5_500]  # late in the table: other rows commit before it fails
    broken = cli.run(
        "runjob", FAILING, "--workers", "2", "--batch-size", "200", "--max-quarantined", "0",
        "--log-format", "json", env={"SCENARIO_FAIL_KEYS": str(bad)},
    )  # fmt: skip
    assert broken.returncode == ExitCode.FAILED, broken.stderr
    run = latest_run(FAILING)
    assert run is not None and run.state == State.FAILED
    last = broken.stderr.strip().splitlines()[-1]
    assert f"Run #{run.pk} of {FAILING} failed: " in last
    assert str(bad) in last, last
    _committed_once(rotation_audit, run)

    fixed = cli.run("runjob", FAILING, "--workers", "2", "--batch-size", "200")
    assert fixed.returncode == 0, fixed.stderr
    assert JobRun.objects.get(pk=run.pk).state == State.SUCCEEDED
    assert_rotated_exactly_once(rotation_audit, before)


@pytest.mark.postgres
def test_max_runtime_stops_every_worker_and_says_so(seed, cli, rotation_audit, procs) -> None:
    seed(20_000)
    group = _workers(cli, procs, 2, "--max-runtime", "2", env={"SCENARIO_CHUNK_SLEEP": "0.05"})
    assert group.wait(timeout=60) == ExitCode.MAX_RUNTIME, group.stderr
    run = latest_run(SLOW)
    assert run is not None and run.state == State.INTERRUPTED
    assert 0 < run.done < 20_000
    _committed_once(rotation_audit, run)
    assert "--max-runtime 2s" in group.stderr.strip().splitlines()[-1]


@pytest.mark.postgres
def test_a_single_process_run_is_continued_by_workers_from_its_checkpoint(
    seed, cli, rotation_audit, procs
) -> None:
    seed(6_000)
    before = snapshot()
    single = procs.spawn(
        cli, "runjob", SLOW, "--batch-size", "100", "--log-format", "json",
        env={"SCENARIO_CHUNK_SLEEP": "0.03"},
    )  # fmt: skip
    wait_done(SLOW, 1_000, single)
    single.signal(signal.SIGTERM)
    assert single.wait(timeout=30) == 143
    run = latest_run(SLOW)
    assert run is not None and not run.sliced
    shared = cli.run("runjob", SLOW, "--workers", "2", "--batch-size", "100")
    assert shared.returncode == 0, shared.stderr
    run = JobRun.objects.get(pk=run.pk)
    assert run.sliced and run.state == State.SUCCEEDED and run.done == len(before)
    assert_rotated_exactly_once(rotation_audit, before)


def test_sqlite_refuses_more_than_one_worker_with_a_sentence(seed, cli) -> None:
    from django.db import connection  # noqa: PLC0415

    if connection.vendor != "sqlite":
        pytest.skip("SQLite's one writer; on PostgreSQL --workers works (the tests above)")
    seed(100)
    refused = cli.run("runjob", ROTATE, "--workers", "2")
    assert refused.returncode == ExitCode.USAGE, refused.stderr
    assert "sqlite has one writer at a time" in refused.stderr
    assert "run without --workers" in refused.stderr
    assert not JobRun.objects.exists(), "nothing is written"
    # One worker where there can be only one: the classic run.
    one = cli.run("runjob", ROTATE, "--workers", "1")
    assert one.returncode == 0, one.stderr
    assert JobRun.objects.get().state == State.SUCCEEDED


def test_a_job_with_outside_effects_is_refused_with_workers(cli) -> None:
    refused = cli.run(
        "runjob", "post_closed_tickets", "--url", "http://127.0.0.1:9/", "--workers", "2"
    )
    assert refused.returncode == ExitCode.USAGE, refused.stderr
    assert "without --workers" in refused.stderr
    assert not JobRun.objects.exists()


@pytest.mark.postgres
def test_a_worker_killed_with_9_is_replaced_and_its_slice_finished_by_the_others(
    seed, cli, rotation_audit, procs
) -> None:
    seed(10_000)
    before = snapshot()
    group = _workers(cli, procs, 2, env={"SCENARIO_CHUNK_SLEEP": "0.05"})
    victim = _started_workers(group, 2)[0]
    wait_done(SLOW, 1_000, group)
    os.kill(victim, signal.SIGKILL)
    assert group.wait(timeout=120) == 0, group.stderr
    (lost,) = group.events("worker.lost")
    assert (lost["pid"], lost["signal"]) == (victim, "SIGKILL")
    assert lost["replaced_by"] not in (victim, None)
    assert JobRun.objects.get(pk=latest_run(SLOW).pk).state == State.SUCCEEDED
    assert_rotated_exactly_once(rotation_audit, before)


@pytest.mark.postgres
def test_rows_failing_in_two_slices_are_quarantined_for_the_whole_run(
    seed, cli, rotation_audit, procs
) -> None:
    seed(6_000)
    before = snapshot()
    keys = sorted(before)
    bad = [keys[1_000], keys[5_000]]  # one in each half of the table
    args = ("runjob", FAILING, "--workers", "2", "--batch-size", "200")
    first = cli.run(*args, env={"SCENARIO_FAIL_KEYS": ",".join(map(str, bad))})
    assert first.returncode == ExitCode.QUARANTINED, first.stderr
    run = latest_run(FAILING)
    assert run is not None and run.state == State.QUARANTINED
    assert run.quarantined == 2 and run.done == len(before) - 2
    assert sorted(run.quarantined_rows.values_list("key", flat=True)) == bad
    listed = cli.run("listjobs", FAILING)
    assert f"2 rows (keys {bad[0]}, {bad[1]})" in listed.stdout, listed.stdout

    # Fixed: the single-process retry reopens the shared run for just those rows.
    # (With --workers too: the rows set aside are few, one process retries them.)
    retried = cli.run("runjob", FAILING, "--retry-quarantined", "--workers", "2")
    assert retried.returncode == 0, retried.stderr
    run = JobRun.objects.get(pk=run.pk)
    assert (run.state, run.quarantined, run.done) == (State.SUCCEEDED, 0, len(before))
    assert_rotated_exactly_once(rotation_audit, before)


@pytest.mark.postgres
def test_every_connection_terminated_mid_run__workers_reconnect_and_finish_exactly_once(
    seed, cli, rotation_audit, procs
) -> None:
    seed(8_000)
    before = snapshot()
    app = "faults_terminated_workers"
    group = procs.spawn(
        runner_cli(cli, app), "runjob", SLOW, "--workers", "2", "--batch-size", "100",
        # Slow enough that the run is still going when its connections are counted.
        "--log-format", "json", env={"SCENARIO_CHUNK_SLEEP": "0.2"},
    )  # fmt: skip
    for target in (1_500, 4_000):
        wait_done(SLOW, target, group)
        pids = [pid for pid, *_ in backends(app)]
        assert len(pids) >= 2, f"expected the workers' connections (and the coordinator's): {pids}"
        with connection.cursor() as c:
            for pid in pids:
                c.execute("SELECT pg_terminate_backend(%s)", [pid])
    assert group.wait(timeout=120) == 0, group.stderr
    lost = [e for e in group.events("job.retry") if e["error_kind"] == "connection_lost"]
    assert len(lost) >= 2, group.events("job.retry")
    assert JobRun.objects.get(pk=latest_run(SLOW).pk).state == State.SUCCEEDED
    assert_rotated_exactly_once(rotation_audit, before)


@pytest.mark.postgres
def test_a_worker_started_by_hand_with_worker_for_shares_a_live_run(
    seed, cli, rotation_audit, procs
) -> None:
    seed(10_000)
    before = snapshot()
    group = _workers(cli, procs, 1, env={"SCENARIO_CHUNK_SLEEP": "0.05"})
    run = wait_done(SLOW, 500, group)
    helper = procs.spawn(
        cli, "runjob", SLOW, "--worker-for", str(run.pk), "--batch-size", "100",
        "--log-format", "json", env={"SCENARIO_CHUNK_SLEEP": "0.05"},
    )  # fmt: skip
    claimed = helper.wait_event("slice.claimed")
    assert claimed["run_id"] == run.pk and claimed["slice"] >= 1  # split off the first
    assert helper.wait(timeout=120) == 0, helper.stderr
    assert group.wait(timeout=120) == 0, group.stderr
    assert JobRun.objects.get(pk=run.pk).state == State.SUCCEEDED
    assert_rotated_exactly_once(rotation_audit, before)
