"""Scenario jobs over the test app's ``Item`` (tests.testapp), for the library's own tests
that start real ``runjob`` processes: the same misbehaviours as the ticket scenarios of
tests/faults, steered by the same environment variables."""

from __future__ import annotations

import os
from pathlib import Path

from batchjobs import Chunk
from tests.testapp.jobs import RotateItemTokens


class FailingItemRotation(RotateItemTokens):
    """Raises on the keys listed in SCENARIO_FAIL_KEYS ('all' fails every chunk)."""

    name = "scenario_failing_item_rotation"
    description = "Item rotation whose code raises on chosen rows (library tests)."

    def process(self, chunk: Chunk) -> int:
        spec = os.environ.get("SCENARIO_FAIL_KEYS", "")
        if spec == "all":
            raise RuntimeError("the job's code is broken")
        hit = {int(k) for k in spec.split(",") if k}.intersection(chunk.keys)
        if hit:
            raise ValueError(f"cannot rotate item {min(hit)}")
        return self.rotate(chunk)


class NotifyingItemRotation(RotateItemTokens):
    """Rotates, and appends one line per row to the file SCENARIO_NOTIFY_FILE (stands for an
    e-mail to the item's owner) unless it is rehearsing: a rehearsal's rollback cannot undo
    an effect outside the database."""

    name = "scenario_notifying_item_rotation"
    description = "Item rotation that notifies each row's owner outside the database (tests)."

    def process(self, chunk: Chunk) -> int:
        changed = self.rotate(chunk)
        if not self.rehearsing:
            with Path(os.environ["SCENARIO_NOTIFY_FILE"]).open("a") as out:
                out.writelines(f"notified {key}\n" for key in chunk.keys)
        return changed
