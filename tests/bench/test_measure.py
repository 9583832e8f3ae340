"""Reading a measured command's output: its events by name, and the tail for errors."""

from __future__ import annotations

import json
from typing import Any

from tests.bench.measure import read_events


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
