"""The runjob approach's reading of the run from its events (the command itself is run for
real by `make bench`, never by a timed test)."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from tests.bench import approaches
from tests.bench.approaches import Runjob
from tests.bench.measure import BenchmarkError, ChildRun, TreePeaks


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


def test_runjob__with_workers_starts_a_coordinator_for_n_workers() -> None:
    argv = Runjob(flags=("--sql-side",), workers=2).argv()
    assert argv[-4:] == ["--restart", "--workers", "2", "--sql-side"]
    assert "--workers" not in Runjob().argv()


def test_runjob__with_workers_reports_the_largest_worker_and_the_coordinator(
    child: list[ChildRun],
) -> None:
    peaks = TreePeaks(command_kib=55 * 1024, children_kib=(62 * 1024, 63 * 1024), tree_kib=64000)
    ran = _child(job_started={"resumed": False}, job_finished=_finished())
    child.append(dataclasses.replace(ran, peaks=peaks))
    sample = Runjob(workers=2).run(1000)
    assert (sample.peak_rss_kib, sample.coordinator_rss_kib) == (63 * 1024, 55 * 1024)
    assert (sample.tree_rss_kib, sample.sampled_rss_kib) == (64000, 63 * 1024)
    assert sample.note.endswith("; coordinator 55.0 MiB")


def test_runjob__without_workers_keeps_the_exact_figure_and_the_sampled_one_beside(
    child: list[ChildRun],
) -> None:
    peaks = TreePeaks(command_kib=65 * 1024, children_kib=(), tree_kib=64 * 1024)
    ran = _child(job_started={"resumed": False}, job_finished=_finished())
    child.append(dataclasses.replace(ran, peaks=peaks))
    sample = Runjob().run(1000)
    assert (sample.peak_rss_kib, sample.sampled_rss_kib) == (64 * 1024, 65 * 1024)
    assert sample.coordinator_rss_kib is None


def test_runjob__refuses_workers_it_could_not_tell_apart(child: list[ChildRun]) -> None:
    peaks = TreePeaks(command_kib=55 * 1024, children_kib=(62 * 1024,), tree_kib=64000)
    ran = _child(job_started={"resumed": False}, job_finished=_finished())
    child.append(dataclasses.replace(ran, peaks=peaks))
    with pytest.raises(BenchmarkError, match="sampled 1 worker processes and a coordinator"):
        Runjob(workers=2).run(1000)


def test_default_approaches__time_each_worker_count_in_both_modes() -> None:
    names = [a.name for a in approaches.default_approaches(workers=(1, 2))]
    assert names == [
        "single UPDATE",
        "runjob (Python tokens)",
        "runjob --sql-side",
        "runjob --workers 1 (Python tokens)",
        "runjob --workers 1 --sql-side",
        "runjob --workers 2 (Python tokens)",
        "runjob --workers 2 --sql-side",
        "naive ORM bulk_update",
    ]
    assert len(approaches.default_approaches(workers=())) == 4
