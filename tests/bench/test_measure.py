"""Reading a measured command's output: its events by name, and the tail for errors."""

from __future__ import annotations

import json
import sys
from typing import Any

from tests.bench.measure import TreePeaks, read_events, run_child


def _line(event: str, **fields: Any) -> str:
    return json.dumps({"event": event, **fields}) + "\n"


def test_read_events__keeps_the_last_event_of_each_name() -> None:
    lines = [
        _line("job.started", run_id=3, resumed=False),
        _line("job.progress", done=10),
        _line("job.progress", done=20),
        "Run #3 of rotate_ticket_tokens succeeded: 20 rows.\n",
        _line("job.finished", done=20, state="succeeded"),
    ]
    events, tail = read_events(lines)
    assert set(events) == {"job.started", "job.progress", "job.finished"}
    assert events["job.progress"]["done"] == 20
    assert events["job.finished"]["state"] == "succeeded"
    assert tail == "".join(lines)


def test_read_events__passes_every_event_in_order_to_on_event() -> None:
    seen: list[int] = []
    lines = [_line("job.progress", done=d) for d in (1, 2, 3)]
    read_events(lines, on_event=lambda e: seen.append(e["done"]))
    assert seen == [1, 2, 3]


def test_read_events__ignores_lines_that_are_not_events() -> None:
    lines = ["{not json\n", "[1, 2]\n", '{"no": "name"}\n', "Traceback...\n"]
    events, tail = read_events(lines, keep=2)
    assert events == {}
    assert tail == '{"no": "name"}\nTraceback...\n'


def test_tree_peaks__tell_the_command_from_its_children() -> None:
    peaks = TreePeaks.from_figures(100, {"100": 55_000, "101": 63_000, "102": 62_000}, 63_500)
    assert (peaks.command_kib, sorted(peaks.children_kib)) == (55_000, [62_000, 63_000])
    assert (peaks.sampled_max_kib, peaks.missed_kib) == (63_000, 500)
    assert TreePeaks.from_figures(7, {"7": 64_000}, 63_900).missed_kib == 0


def test_run_child__samples_each_process_of_a_tree_and_the_exact_maximum() -> None:
    """A real launcher, a parent that starts a child holding 64 MiB for longer than the
    launcher takes to find it (0.5 s): the child's own peak is told apart from the
    parent's, and wait4's exact figure is the largest."""
    code = (
        "import subprocess, sys; subprocess.run([sys.executable, '-S', '-c', "
        "'import time; b = bytearray(64 * 2**20); time.sleep(1.2)'], check=True)"
    )
    child = run_child([sys.executable, "-S", "-c", code], tree=True)
    assert child.returncode == 0 and child.peaks is not None
    (worker,) = child.peaks.children_kib
    assert worker > 64 * 1024 > (child.peaks.command_kib or 0)
    assert child.peaks.tree_kib >= 64 * 1024
    assert child.peaks.missed_kib < 1024
    assert child.cpu_seconds is not None and child.cpu_seconds > 0  # the child's included
