"""The runjob approach's reading of the run from its events (the command itself is run for
real by `make bench`, never by a timed test)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.bench import approaches
from tests.bench.approaches import Runjob
from tests.bench.measure import BenchmarkError, ChildRun


def _child(returncode: int = 0, **events: dict[str, Any]) -> ChildRun:
    named = {name.replace("_", "."): fields for name, fields in events.items()}
    return ChildRun(12.5, 64 * 1024, returncode, named, tail="last lines\n")


def _finished(done: int = 1000, state: str = "succeeded") -> dict[str, Any]:
    return {"run_id": 7, "state": state, "done": done, "duration_seconds": 11.9, "rate": 84.0}


@pytest.fixture
def child(monkeypatch: pytest.MonkeyPatch) -> list[ChildRun]:
    """Append what the next runjob process "ends with"; no process is started."""
    given: list[ChildRun] = []
    monkeypatch.setattr(approaches, "run_child", lambda argv, **_: given[0])
    return given


def test_runjob__starts_a_new_run_of_the_named_job_with_json_events() -> None:
    argv = Runjob(job="some_rotation").argv()
    assert argv[2:] == ["runjob", "some_rotation", "--log-format", "json", "--restart"]
    assert Runjob().job == "rotate_ticket_tokens"
    assert Runjob(flags=("--sql-side",)).argv()[-2:] == ["--restart", "--sql-side"]


def test_runjob__reads_its_figures_from_job_finished(child: list[ChildRun]) -> None:
    child.append(_child(job_started={"resumed": False}, job_finished=_finished()))
    sample = Runjob(flags=("--sql-side",)).run(1000)
    assert (sample.seconds, sample.peak_rss_kib, sample.job_seconds) == (12.5, 65536, 11.9)
    assert sample.note == "run #7 succeeded: 1,000 rows in 11.90 s by its own clock, 84 rows/s"


@pytest.mark.parametrize(
    ("returncode", "events", "says"),
    [
        (1, {"job_started": {"resumed": False}}, "exited with 1; its last output:\nlast lines"),
        (0, {"job_started": {"resumed": True}, "job_finished": _finished()}, "resumed: True"),
        (0, {"job_finished": _finished(done=999)}, "with 999 rows done"),
        (0, {"job_finished": _finished(state="succeeded_with_quarantine")}, "ended succeeded_"),
    ],
    ids=["failed", "resumed", "too-few-rows", "quarantined"],
)
def test_runjob__refuses_a_run_that_did_not_rotate_every_row_afresh(
    child: list[ChildRun], returncode: int, events: dict[str, Any], says: str
) -> None:
    child.append(_child(returncode, **events))
    with pytest.raises(BenchmarkError) as raised:
        Runjob().run(1000)
    assert says in str(raised.value)
