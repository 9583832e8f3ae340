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

from batchjobs import events
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
    log.warning(events.RETRY, attempt=1, error_kind="deadlock")
    log.info(events.PROGRESS, **_progress(done=3, percent=30.0))
    out = stream.getvalue()
    clear = "\r\x1b[2K"
    first, second, rest = out.split(clear, 3)[1:]
    assert first.startswith("rotate [##") and "1/1,000,000" in first
    assert "\n" not in first  # redrawn in place, not scrolled
    assert second.startswith("rotate [####") and second.endswith("\n")
    retry_line = second.split("\n")[1]
    assert "job.retry" in retry_line and "error_kind=deadlock" in retry_line
    assert rest.startswith("rotate [#######") and "3/1,000,000" in rest
    assert not rest.endswith("\n")


def test_console__no_colour_codes_when_not_a_terminal() -> None:
    stream = io.StringIO()
    events.configure(log_format="console", stream=stream)
    events.get_logger(job="j").info(events.STARTED)
    assert "\x1b[" not in stream.getvalue()


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
