"""The job's own code raises. A bug on every row fails the run with the error recorded and
the checkpoint intact; the fixed code resumes it. A few bad rows are quarantined (set
aside, listed) while the others are rotated, and `--retry-quarantined` owes just those."""

from __future__ import annotations

import json

import pytest

from batchjobs.exit_codes import ExitCode
from batchjobs.models import QuarantinedRow, State
from tests.conftest import events_of
from tests.faults.helpers import (
    FAILING,
    assert_checkpoint_consistent,
    assert_rotated_exactly_once,
    runs_of,
    snapshot,
)

ARGS = ("runjob", FAILING, "--batch-size", "200", "--log-format", "json")


@pytest.mark.django_db(transaction=True)
def test_job_code_raises_everywhere__run_fails_then_the_fixed_code_resumes_it(
    seed, cli, rotation_audit
) -> None:
    seed(2_000)
    before = snapshot()
    keys = sorted(before)
    broken = cli.run(*ARGS, env={"SCENARIO_FAIL_KEYS": "all"})

    assert broken.returncode == ExitCode.FAILED, broken.stderr
    (line,) = broken.stderr.strip().splitlines()
    assert "Traceback" not in line
    assert f"Run #{runs_of(FAILING)[0].pk} of {FAILING} failed:" in line
    assert "the job's code is broken" in line
    assert f"after a fix, `runjob {FAILING}` resumes it" in line
    (run,) = runs_of(FAILING)
    assert (run.state, run.owner_token) == (State.FAILED, "")
    assert run.error_class and "the job's code is broken" in run.error_message
    failed = [e for e in events_of(broken.stdout) if e["event"] == "job.failed"]
    assert len(failed) == 1 and "the job's code is broken" in failed[0]["error"]
    # Nothing was rotated; the rows looked at one by one were set aside, each with its error.
    assert rotation_audit.summary() == {"never": 2_000, "once": 0, "more": 0}
    aside = list(QuarantinedRow.objects.filter(run=run).values_list("key", flat=True))
    assert run.quarantined == len(aside)
    assert aside == keys[: len(aside)]
    assert all(
        "the job's code is broken" in m
        for m in QuarantinedRow.objects.filter(run=run).values_list("error_message", flat=True)
    )
    assert_checkpoint_consistent(rotation_audit, run, keys, quarantined=aside)

    fixed = cli.run(*ARGS)
    assert fixed.returncode == 0, fixed.stderr
    assert runs_of(FAILING) == [run]
    run.refresh_from_db()
    assert (run.state, run.done, run.quarantined) == (State.SUCCEEDED, 2_000, 0)
    assert (run.error_class, run.error_message) == ("", "")
    assert not QuarantinedRow.objects.filter(run=run, resolved_at__isnull=True).exists()
    assert_rotated_exactly_once(rotation_audit, before)


@pytest.mark.django_db(transaction=True)
def test_a_few_bad_rows__quarantined_listed_then_retry_quarantined_does_just_those(
    seed, cli, rotation_audit
) -> None:
    seed(3_000)
    before = snapshot()
    keys = sorted(before)
    bad = [keys[17], keys[1_234], keys[2_999]]
    first = cli.run(*ARGS, env={"SCENARIO_FAIL_KEYS": ",".join(map(str, bad))})

    assert first.returncode == ExitCode.QUARANTINED, first.stderr
    (line,) = first.stderr.strip().splitlines()
    assert f"finished with 3 quarantined rows (keys {bad})" in line
    assert f"`runjob {FAILING} --retry-quarantined`" in line
    (run,) = runs_of(FAILING)
    # Done is committed work only: the three rows set aside still hold their old tokens.
    assert (run.state, run.quarantined, run.done) == (State.QUARANTINED, 3, 2_997)
    events = events_of(first.stdout)
    assert sorted(e["key"] for e in events if e["event"] == "job.quarantined") == bad
    (finished,) = [e for e in events if e["event"] == "job.finished"]
    assert (finished["state"], finished["quarantined"]) == ("succeeded_with_quarantine", 3)
    assert (finished["done"], finished["total"]) == (2_997, 3_000)
    last = [e for e in events if e["event"] == "job.progress"][-1]
    assert (last["done"], last["quarantined"], last["percent"]) == (2_997, 3, 99.9)
    counts = rotation_audit.counts()
    assert all(pk not in counts for pk in bad)
    assert sum(counts.values()) == 3_000 - 3 and set(counts.values()) == {1}

    listed = cli.run("listjobs", FAILING, "--json")
    assert listed.returncode == 0, listed.stderr
    shown = json.loads(listed.stdout)[0]["runs"][0]
    assert (shown["state"], shown["quarantined"]) == ("succeeded_with_quarantine", 3)
    assert shown["quarantined_keys"] == bad
    table = cli.run("listjobs").stdout.splitlines()
    (row,) = [line for line in table if line.startswith(f"{FAILING} ")]
    assert f"#{run.pk}" in row and "succeeded_with_quarantine (3 quarantined)" in row, row

    retried = cli.run(*ARGS, "--retry-quarantined")
    assert retried.returncode == 0, retried.stderr
    assert runs_of(FAILING) == [run]
    run.refresh_from_db()
    assert (run.state, run.quarantined, run.done) == (State.SUCCEEDED, 0, 3_000)
    assert QuarantinedRow.objects.filter(run=run, resolved_at__isnull=False).count() == 3
    assert_rotated_exactly_once(rotation_audit, before)


@pytest.mark.django_db(transaction=True)
def test_max_quarantined__more_bad_rows_than_allowed_fails_the_run(
    seed, cli, rotation_audit
) -> None:
    seed(2_000)
    before = snapshot()
    keys = sorted(before)
    bad = [keys[100], keys[900], keys[1_500]]
    result = cli.run(
        *ARGS, "--max-quarantined", "1", env={"SCENARIO_FAIL_KEYS": ",".join(map(str, bad))}
    )

    assert result.returncode == ExitCode.FAILED, result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert "Traceback" not in line
    assert "(limit 1, --max-quarantined)" in line
    assert f"key {bad[1]} failed too" in line
    (run,) = runs_of(FAILING)
    assert (run.state, run.quarantined) == (State.FAILED, 1)
    assert "--max-quarantined" in run.error_message
    (failed,) = [e for e in events_of(result.stdout) if e["event"] == "job.failed"]
    assert (failed["done"], failed["quarantined"]) == (run.done, 1), "the event tells the truth"
    # Stopped at the second bad row: everything before it done (bar the first bad row).
    assert run.cursor < bad[1]
    assert_checkpoint_consistent(rotation_audit, run, keys, quarantined=bad[:1])

    fixed = cli.run(*ARGS)
    assert fixed.returncode == 0, fixed.stderr
    run.refresh_from_db()
    assert (run.state, run.quarantined, run.done, len(runs_of(FAILING))) == (
        State.SUCCEEDED,
        0,
        2_000,
        1,
    )
    assert_rotated_exactly_once(rotation_audit, before)
