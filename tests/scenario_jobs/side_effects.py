"""A job with an effect outside the database, for ``--dry-run``: a rehearsal's rollback
cannot undo it, so the job must skip it when ``self.rehearsing``."""

from __future__ import annotations

import os
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
