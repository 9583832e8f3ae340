"""A job with an effect outside the database, for ``--dry-run``: a rehearsal's rollback
cannot undo it, so the job must skip it when ``self.rehearsing``."""

from __future__ import annotations

import os
import time
from pathlib import Path

from batchjobs import Chunk
from tests.scenario_jobs.scenarios import _Rotation


class NotifyingRotation(_Rotation):
    """Rotates, and appends one line per row to the file SCENARIO_NOTIFY_FILE (stands for an
    e-mail to the ticket's owner) unless it is rehearsing."""

    name = "scenario_notifying_rotation"
    description = "Rotation that notifies each row's owner outside the database (tests)."

    def process(self, chunk: Chunk) -> int:
        changed = self.rotate(chunk)
        if not self.rehearsing:
            with Path(os.environ["SCENARIO_NOTIFY_FILE"]).open("a") as out:
                out.writelines(f"notified {key}\n" for key in chunk.keys)
        return changed


class LingeringRotation(_Rotation):
    """Rotates, creates the file SCENARIO_STARTED_FILE (the test's sign that ``process`` is
    under way), then takes SCENARIO_LINGER_SECONDS (default 30) in Python: a stop signal
    arrives while the job's own code runs."""

    name = "scenario_lingering_rotation"
    description = "Rotation that lingers in its own code inside each chunk (tests)."

    def process(self, chunk: Chunk) -> int:
        changed = self.rotate(chunk)
        Path(os.environ["SCENARIO_STARTED_FILE"]).touch()
        time.sleep(float(os.environ.get("SCENARIO_LINGER_SECONDS", "30")))
        return changed
