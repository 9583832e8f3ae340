"""The event vocabulary (docs/events.md) and its two renderings."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import pytest
from structlog.testing import capture_logs

from batchjobs import events, sentences
from batchjobs.options import RunOptions
from batchjobs.runner import Runner
from tests.batchjobs.fakes import RecordingRotation
from tests.testapp.models import Item

PROGRESS_KEYS = {
    "done",
    "total",
    "percent",
    "rate",
    "eta_seconds",
    "elapsed_seconds",
    "chunk_size",
}


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def _progress(**overrides: Any) -> dict[str, Any]:
    return {
        "done": 610_000,
        "total": 1_000_000,
        "percent": 61.0,
        "rate": 40_120.4,
        "eta_seconds": 9.4,
        "elapsed_seconds": 15.2,
        "chunk_size": 5_000,
        **overrides,
    }


# -- configuration -------------------------------------------------------------------------


def test_configure__json_when_the_output_is_not_a_terminal() -> None:
    assert events.configure(stream=io.StringIO()) == "json"


def test_configure__console_on_a_terminal() -> None:
    assert events.configure(stream=_Terminal()) == "console"


def test_configure__explicit_format_wins() -> None:
    assert events.configure(log_format="json", stream=_Terminal()) == "json"
    assert events.configure(log_format="console", stream=io.StringIO()) == "console"


# -- JSON lines ----------------------------------------------------------------------------


def _json_lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_json__one_object_per_line_with_event_job_run_id_timestamp_level() -> None:
    stream = io.StringIO()
    events.configure(log_format="json", stream=stream)
    log = events.get_logger(job="rotate_item_tokens").bind(run_id=7)
    log.info(events.STARTED, total=3)
    log.info(events.PROGRESS, **_progress())
    first, second = _json_lines(stream)
    assert first["event"] == "job.started"
    assert (first["job"], first["run_id"], first["level"]) == ("rotate_item_tokens", 7, "info")
    stamp = datetime.fromisoformat(first["timestamp"])
    assert stamp.utcoffset() == timedelta(0)
    assert abs(datetime.now(stamp.tzinfo) - stamp) < timedelta(minutes=1)
    assert second["event"] == "job.progress"
    assert {k: second[k] for k in PROGRESS_KEYS} == _progress()


def test_json__levels_follow_the_call() -> None:
    stream = io.StringIO()
    events.configure(log_format="json", stream=stream)
    log = events.get_logger(job="j", run_id=1)
    log.warning(events.RETRY, attempt=1)
    log.error(events.FAILED, error="x")
    assert [(e["event"], e["level"]) for e in _json_lines(stream)] == [
        ("job.retry", "warning"),
        ("job.failed", "error"),
    ]


def test_json__stdlib_records_share_the_renderer() -> None:
    stream = io.StringIO()
    events.configure(log_format="json", stream=stream)
    logging.getLogger("django.db.backends").warning("slow query %s", "x")
    (line,) = _json_lines(stream)
    assert (line["event"], line["level"], line["logger"]) == (
        "slow query x",
        "warning",
        "django.db.backends",
    )
    assert "timestamp" in line


def test_json__debug_records_are_dropped() -> None:
    stream = io.StringIO()
    events.configure(log_format="json", stream=stream)
    logging.getLogger("django.db.backends").debug("(0.001) SELECT ...")
    assert stream.getvalue() == ""


# -- the terminal --------------------------------------------------------------------------


def test_progress_line__reads_at_a_glance() -> None:
    line = events.progress_line({"event": events.PROGRESS, "job": "rotate", **_progress()})
    assert line == (
        "rotate [##############..........]   61.0%  610,000/1,000,000  40,120 rows/s  "
        "ETA 9s  elapsed 15s  chunk 5,000"
    )


def test_progress_line__unknown_total_and_rate() -> None:
    line = events.progress_line(
        {"job": "rotate", **_progress(total=None, percent=None, rate=None, eta_seconds=None)}
    )
    assert "[........................]" in line
    assert "   ?  %" in line
    assert "610,000/?" in line
    assert "- rows/s" in line
    assert "ETA ?" in line


def test_progress_line__full_bar_at_one_hundred_percent() -> None:
    line = events.progress_line({"job": "j", **_progress(percent=100.0)})
    assert "[" + "#" * 24 + "]" in line


def test_console__progress_redraws_one_line_and_other_events_start_below_it() -> None:
    stream = io.StringIO()
    events.configure(log_format="console", stream=stream)
    log = events.get_logger(job="rotate", run_id=3)
    log.info(events.PROGRESS, **_progress(done=1, percent=10.0))
    log.info(events.PROGRESS, **_progress(done=2, percent=20.0))
    log.warning(events.RETRY, **RETRY_FIELDS)
    log.info(events.PROGRESS, **_progress(done=3, percent=30.0))
    out = stream.getvalue()
    clear = "\r\x1b[2K"
    first, second, rest = out.split(clear, 3)[1:]
    assert first.startswith("rotate [##") and "1/1,000,000" in first
    assert "\n" not in first  # redrawn in place, not scrolled
    assert second.startswith("rotate [####") and second.endswith("\n")
    retry_line = second.split("\n")[1]
    assert retry_line == (
        "Attempt 1 failed with deadlock (deadlock (SQLSTATE 40P01)); retrying in 0.3s "
        "with chunks of 1,000 rows."
    )
    assert rest.startswith("rotate [#######") and "3/1,000,000" in rest
    assert not rest.endswith("\n")


def test_console__no_colour_codes_when_not_a_terminal() -> None:
    stream = io.StringIO()
    events.configure(log_format="console", stream=stream)
    events.get_logger(job="j").info(events.STARTED)
    assert "\x1b[" not in stream.getvalue()


# -- sentences: what each event reads as on a terminal -------------------------------------

RUN = {"job": "rotate_ticket_tokens", "run_id": 3}
RETRY_FIELDS = {
    "attempt": 1,
    "error_kind": "deadlock",
    "error_class": "psycopg2.errors.DeadlockDetected",
    "error": "deadlock (SQLSTATE 40P01)",
    "wait_seconds": 0.31,
    "chunk_size": 1_000,
}
STARTED = {
    "resumed": False,
    "done": 0,
    "total": 1_000_000,
    "high_water_mark": 1_000_000,
    "cursor": None,
    "chunk_size": 1_000,
    "options": {"reason": "INC-9"},
    "started_by": "alice",
    "reason": "INC-9",
    "run_started_by": "alice",
    "run_reason": "INC-9",
}
FINISHED = {
    "state": "succeeded",
    "done": 1_000_000,
    "total": 1_000_000,
    "quarantined": 0,
    "changed": 1_000_000,
    "duration_seconds": 133.1,
    "rate": 7_512.3,
    "verification": {"checked": 1_000_000, "stale_found": 0, "reswept": 0, "remaining": 0},
    "table_bytes_before": 64 * 1024 * 1024,
    "table_bytes_after": 128 * 1024 * 1024,
    "table_bytes_after_vacuum": None,
    "vacuum_seconds": None,
}


def _render(*items: tuple[str, dict[str, Any]], verbosity: int = 1, level: str = "info") -> str:
    stream = io.StringIO()
    events.configure(log_format="console", stream=stream, verbosity=verbosity)
    log = events.get_logger(**RUN)
    for name, fields in items:
        getattr(log, level)(name, **fields)
    return stream.getvalue()


def _sentence(name: str, **fields: Any) -> str:
    return _render((name, fields)).rstrip("\n")


def test_sentence__started() -> None:
    assert _sentence(events.STARTED, **STARTED) == (
        "Started run #3 of rotate_ticket_tokens: 1,000,000 rows, by alice. Reason: INC-9."
    )


def test_sentence__started_names_the_options_as_flags() -> None:
    options = {"batch_size": 5000, "vacuum": True, "reason": "INC-9"}
    assert _sentence(events.STARTED, **{**STARTED, "options": options}).endswith(
        " Reason: INC-9. Options: --batch-size 5000, --vacuum."
    )


def test_sentence__resumed_by_someone_else() -> None:
    resumed = {**STARTED, "resumed": True, "done": 250_000, "started_by": "bob", "reason": ""}
    assert _sentence(events.STARTED, **resumed) == (
        "Resumed run #3 of rotate_ticket_tokens at 250,000 of 1,000,000 rows (25.0%), "
        "by bob (started by alice). Reason: INC-9."
    )


def test_sentence__finished_with_sizes_in_mib_and_the_duration() -> None:
    assert _sentence(events.FINISHED, **FINISHED) == (
        "Run #3 succeeded: 1,000,000 rows in 2m13s (7,512 rows/s). "
        "Table 64.0 MiB -> 128.0 MiB; VACUUM ANALYZE reclaims the dead rows: see --vacuum."
    )


def test_sentence__finished_after_vacuum_and_without_sizes() -> None:
    vacuumed = {**FINISHED, "table_bytes_after_vacuum": 96 * 1024 * 1024, "vacuum_seconds": 0.4}
    assert _sentence(events.FINISHED, **vacuumed).endswith(
        "Table 64.0 MiB -> 128.0 MiB, 96.0 MiB after VACUUM ANALYZE (0.4s)."
    )
    sqlite = {**FINISHED, "table_bytes_before": None, "table_bytes_after": None}
    assert _sentence(events.FINISHED, **sqlite) == (
        "Run #3 succeeded: 1,000,000 rows in 2m13s (7,512 rows/s)."
    )


def test_sentence__finished_after_a_resume_counts_this_session_apart() -> None:
    resumed = {**STARTED, "resumed": True, "done": 250_000}
    out = _render((events.STARTED, resumed), (events.FINISHED, FINISHED))
    assert out.splitlines()[1].startswith(
        "Run #3 succeeded: 1,000,000 rows (750,000 in this session: 2m13s, 7,512 rows/s)."
    )


def test_sentence__finished_with_quarantined_rows_says_what_next() -> None:
    with_quarantine = {
        **FINISHED,
        "state": "succeeded_with_quarantine",
        "done": 999_998,
        "quarantined": 2,
        "table_bytes_before": None,
        "table_bytes_after": None,
    }
    assert _sentence(events.FINISHED, **with_quarantine) == (
        "Run #3 succeeded with 2 rows quarantined: 999,998 of 1,000,000 rows (100.0%) "
        "in 2m13s (7,512 rows/s). Fix the quarantined rows (listjobs shows their keys), "
        "then: python manage.py runjob rotate_ticket_tokens --retry-quarantined"
    )


def test_sentence__verified() -> None:
    clean = {"checked": 1_000_000, "stale_found": 0, "reswept": 0, "remaining": 0}
    assert _sentence(events.VERIFIED, **clean) == (
        "Verified 1,000,000 rows: none still needs the job."
    )
    reswept = {**clean, "stale_found": 3, "reswept": 3}
    assert _sentence(events.VERIFIED, **reswept) == (
        "Verified 1,000,000 rows: 3 still needed the job, 3 re-swept, none left."
    )
    left = {**reswept, "remaining": 1}
    assert _sentence(events.VERIFIED, **left) == (
        "Verified 1,000,000 rows: 3 still needed the job, 3 re-swept, 1 still need it: "
        "the run fails."
    )


RESUME = "python manage.py runjob rotate_ticket_tokens"


def test_sentence__interrupted_by_a_signal() -> None:
    fields = {"done": 250_000, "total": 1_000_000, "signal": "SIGINT", "cause": "SIGINT"}
    assert _sentence(events.INTERRUPTED, **fields, resume_command=RESUME) == (
        "Interrupted by SIGINT after 250,000 of 1,000,000 rows (25.0%); every committed "
        "chunk is kept. Resume with: python manage.py runjob rotate_ticket_tokens"
    )


def test_sentence__interrupted_by_max_runtime_or_a_lost_database() -> None:
    window = {"done": 10, "total": 40, "signal": None, "cause": "--max-runtime 60s reached"}
    assert _sentence(events.INTERRUPTED, **window, resume_command=RESUME) == (
        "Stopped after 10 of 40 rows (25.0%): --max-runtime 60s reached; every committed "
        f"chunk is kept. Resume with: {RESUME}"
    )
    lost = {
        "done": 2_000,
        "cause": "database lost",
        "error_class": "psycopg2.OperationalError",
        "error": "server closed the connection unexpectedly",
    }
    assert _sentence(events.INTERRUPTED, **lost, resume_command=RESUME) == (
        "Lost the database after 2,000 rows (server closed the connection unexpectedly); "
        f"every committed chunk is kept. Resume with: {RESUME}"
    )


def test_sentence__paused_and_cancelled_keep_their_message() -> None:
    message = (
        "Run #3 of rotate_ticket_tokens is paused: continue with "
        "`runjob rotate_ticket_tokens --resume`."
    )
    assert _sentence(events.PAUSED, done=42_000, total=200_000, message=message) == (
        message + " Rows done: 42,000 of 200,000 (21.0%)."
    )


def test_sentence__failed() -> None:
    fields = {
        "error_class": "batchjobs.exceptions.TooManyQuarantined",
        "error": "2 rows are quarantined already (limit 2, --max-quarantined) and key 3 "
        "failed too: the job's code is broken",
        "done": 0,
        "quarantined": 2,
    }
    assert _sentence(events.FAILED, **fields) == (
        "Run #3 failed (TooManyQuarantined): 2 rows are quarantined already (limit 2, "
        "--max-quarantined) and key 3 failed too: the job's code is broken. "
        "Rows done: 0, 2 quarantined."
    )


def test_sentence__the_run_s_warnings() -> None:
    assert _sentence(events.RETRY, **RETRY_FIELDS) == (
        "Attempt 1 failed with deadlock (deadlock (SQLSTATE 40P01)); retrying in 0.3s "
        "with chunks of 1,000 rows."
    )
    throttled = {"reason": "1 sessions waiting on locks for over 1.0s", "wait_seconds": 2.0}
    assert _sentence(events.THROTTLED, **throttled) == (
        "Throttled: 1 sessions waiting on locks for over 1.0s; waiting 2.0s."
    )
    quarantined = {
        "key": 5000,
        "error_class": "builtins.ValueError",
        "error": "cannot rotate ticket 5000",
    }
    assert _sentence(events.QUARANTINED, **quarantined) == (
        "Quarantined the row with key 5000 (ValueError: cannot rotate ticket 5000); "
        "the run goes on without it."
    )


def test_sentence__tuned_and_vacuum() -> None:
    tuned = {"sleep": 0.5, "chunk_size": 2_000, "tuning": {"sleep": 0.5}}
    assert _sentence(events.TUNED, **tuned) == ("Tuned: chunks of 2,000 rows, 0.5s between chunks.")
    started = {"table": "tickets_ticket", "lock_timeout_seconds": 5.0}
    assert _sentence(events.VACUUM_STARTED, **started) == (
        "VACUUM ANALYZE tickets_ticket (waits at most 5.0s for its lock; Ctrl-C skips it)."
    )
    failed = {
        "error_class": "psycopg2.errors.LockNotAvailable",
        "error": "lock_timeout (SQLSTATE 55P03)",
        "cause": "tickets_ticket stayed locked for over 5s",
    }
    assert _sentence(events.VACUUM_FAILED, **failed) == (
        "VACUUM ANALYZE did not complete: tickets_ticket stayed locked for over 5s. "
        "The run stands; VACUUM ANALYZE the table by hand."
    )


def test_sentence__every_event_but_progress_has_one() -> None:
    names = {v for k, v in vars(events).items() if k.isupper() and str(v).startswith("job.")}
    assert names - set(sentences.SENTENCES) == {events.PROGRESS}


def test_console__verbosity_2_gives_key_value_lines() -> None:
    line = _render((events.STARTED, STARTED), verbosity=2)
    assert "job.started" in line
    assert "started_by=alice" in line and "total=1000000" in line
    assert "Started run" not in line


def test_json__unchanged_by_verbosity_and_sentences() -> None:
    stream = io.StringIO()
    events.configure(log_format="json", stream=stream, verbosity=1)
    events.get_logger(**RUN).info(events.FINISHED, **FINISHED)
    (line,) = _json_lines(stream)
    assert {k: line[k] for k in FINISHED} == FINISHED
    assert line["event"] == "job.finished"


# -- what a run emits ------------------------------------------------------------------------


@pytest.fixture
def ran(
    seed_items: Callable[[int], int], small_chunks: None
) -> tuple[list[dict[str, Any]], dict[int, Any], Any]:
    seed_items(30)
    before = dict(Item.objects.values_list("id", "token"))
    with capture_logs() as logs:
        outcome = Runner(RecordingRotation(), RunOptions(batch_size=10)).run()
    return logs, before, outcome


@pytest.mark.django_db(transaction=True)
def test_run_events__started_progress_verified_finished_in_order(ran) -> None:
    logs, _, outcome = ran
    names = [e["event"] for e in logs]
    assert names[0] == "job.started"
    assert names[-2:] == ["job.verified", "job.finished"]
    assert set(names[1:-2]) == {"job.progress"}
    for event in logs:
        assert (event["job"], event["run_id"]) == (RecordingRotation.name, outcome.run_id)


@pytest.mark.django_db(transaction=True)
def test_run_events__progress_has_the_documented_fields(ran) -> None:
    logs, _, _ = ran
    progress = [e for e in logs if e["event"] == "job.progress"]
    assert len(progress) >= 3
    for event in progress:
        assert event.keys() >= PROGRESS_KEYS
        assert event["log_level"] == "info"
        assert event["total"] == 30
        assert event["chunk_size"] == 10
        assert event["elapsed_seconds"] >= 0
    assert [e["done"] for e in progress[:3]] == [10, 20, 30]
    assert (progress[-1]["done"], progress[-1]["percent"]) == (30, 100.0)


@pytest.mark.django_db(transaction=True)
def test_run_events__started_and_finished_carry_the_totals(ran) -> None:
    logs, _, _ = ran
    started, finished = logs[0], logs[-1]
    assert (started["resumed"], started["done"], started["total"]) == (False, 0, 30)
    assert started["options"] == {"batch_size": 10}
    assert (finished["state"], finished["done"], finished["total"]) == ("succeeded", 30, 30)
    assert finished["quarantined"] == 0
    assert finished["duration_seconds"] >= 0
    assert finished["verification"]["remaining"] == 0


@pytest.mark.django_db(transaction=True)
def test_run_events__never_carry_a_token(ran) -> None:
    logs, before, _ = ran
    after = dict(Item.objects.values_list("id", "token"))
    text = json.dumps(logs, default=str)
    for token in [*before.values(), *after.values()]:
        assert str(token) not in text
        assert token.hex not in text


@pytest.mark.django_db(transaction=True)
def test_run_events__progress_is_throttled_to_the_interval(seed_items, settings) -> None:
    settings.BATCHJOBS_MIN_CHUNK_SIZE = 1
    settings.BATCHJOBS_PROGRESS_INTERVAL_SECONDS = 3_600
    seed_items(30)
    with capture_logs() as logs:
        Runner(RecordingRotation(), RunOptions(batch_size=10)).run()
    progress = [e for e in logs if e["event"] == "job.progress"]
    assert [e["done"] for e in progress] == [30]  # only the final one
