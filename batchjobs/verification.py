"""The verification pass: after the last chunk, prove that no row present at the start
still needs the job (a stale write-back, a change that bypassed the model), re-sweeping any
found, through the one chunk transaction (``ChunkUnit``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from batchjobs import events
from batchjobs.attempts import Attempts
from batchjobs.chunk import Chunk
from batchjobs.job import ResumableJob, RunInfo
from batchjobs.keyset import Keyset, unique_rows
from batchjobs.stopping import Stopper
from batchjobs.store import RunStore
from batchjobs.unit import ChunkUnit

if TYPE_CHECKING:
    from structlog.stdlib import BoundLogger


class Verifier:
    def __init__(
        self,
        *,
        job: ResumableJob,
        unit: ChunkUnit,
        store: RunStore,
        attempts: Attempts,
        stopper: Stopper,
        chunk_size: Callable[[], int],
        log: BoundLogger,
    ) -> None:
        self.job = job
        self.unit = unit
        self.keyset = unit.keyset
        self.store = store
        self.attempts = attempts
        self.stopper = stopper
        self.chunk_size = chunk_size
        self.log = log

    def verify(self, run: RunInfo, *, checked: int | None) -> dict[str, Any] | None:
        """Re-check that no row present at the start still needs the job, re-sweeping any
        found; the counts, or ``None`` when a stop request cut the re-sweep short."""
        if self.keyset.upto is None:  # no rows at the start: nothing can be stale
            return {}
        pending = self.job.pending(run)
        if pending is None:
            return {}
        pending = unique_rows(pending, self.job.key)  # a to-many filter counts rows once
        set_aside = [self.keyset.decode(key) for key in self.store.unresolved_keys()]
        if set_aside:  # reported already; owed by --retry-quarantined
            pending = pending.exclude(**{f"{self.keyset.name}__in": set_aside})
        found = self.attempts(pending.count)
        reswept = 0
        if found:
            sweep = Keyset(pending, self.job.key, self.keyset.upto)
            after = None

            def attempt() -> list[Any]:
                # Planned inside the transaction: a retry after a lost COMMIT reply finds
                # the rows it did already gone from ``pending`` and does not redo them.
                # The checkpoint stays where the run ended; the heartbeat moves with the work.
                with self.unit.transaction():
                    keys = sweep.next_keys(after=after, limit=self.chunk_size())
                    if keys:
                        self.unit.process(Chunk(keys=keys, keyset=sweep))
                    self.store.heartbeat()
                    return keys

            while keys := self.attempts(attempt):
                reswept += len(keys)
                after = keys[-1]
                if self.stopper.requested:
                    return None
        remaining = self.attempts(pending.count) if found else 0
        result = {"checked": checked, "stale_found": found, "reswept": reswept}
        result["remaining"] = remaining
        self.log.info(events.VERIFIED, **result)
        return result
