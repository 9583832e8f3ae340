"""A job with lifecycle hooks, for a real ``runjob`` process: each hook appends a line to
the file SCENARIO_HOOKS_FILE, so the test sees what a hook saw after the process ended."""

from __future__ import annotations

import os
from pathlib import Path

from batchjobs import Interruption, RunInfo
from tests.scenario_jobs.scenarios import SlowRotation


class HookedRotation(SlowRotation):
    """The slow rotation (SCENARIO_CHUNK_SLEEP seconds in each chunk), writing
    ``hook state done reason`` per hook call."""

    name = "scenario_hooked_rotation"
    description = "Rotation whose lifecycle hooks write what they are told to a file (tests)."

    def _note(self, hook: str, run: RunInfo, reason: str = "-") -> None:
        with Path(os.environ["SCENARIO_HOOKS_FILE"]).open("a") as out:
            out.write(f"{hook} {run.state} {run.done} {reason}\n")

    def on_start(self, run: RunInfo) -> None:
        self._note("on_start", run)

    def on_complete(self, run: RunInfo) -> None:
        self._note("on_complete", run)

    def on_interrupt(self, run: RunInfo, reason: Interruption) -> None:
        self._note("on_interrupt", run, reason.value)

    def on_error(self, run: RunInfo, error: BaseException) -> None:
        self._note("on_error", run, type(error).__name__)
