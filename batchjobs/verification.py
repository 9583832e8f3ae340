"""The verification pass: after the last chunk, prove that no row present at the start
still needs the job (a stale write-back, a change that bypassed the model), re-sweeping any
found. A mixin of ``Runner``.
"""

from __future__ import annotations

from typing import Any

from batchjobs import events
from batchjobs.chunk import Chunk
from batchjobs.keyset import Keyset, unique_rows
from batchjobs.models import QuarantinedRow


class VerificationStep:
    def _verify(self) -> dict[str, Any]:
        """Re-check that no row present at the start still needs the job (a write-back
        or a bypass of the model), re-sweeping any found, and report the counts."""
        if self.keyset.upto is None:  # no rows at the start: nothing can be stale
            return {}
        pending = self.job.pending(self.run_info)
        if pending is None:
            return {}
        pending = unique_rows(pending, self.job.key)  # a to-many filter counts rows once
        set_aside = [
            self.keyset.decode(key)
            for key in QuarantinedRow.objects.using(self.alias)
            .filter(run_id=self.run_id, resolved_at__isnull=True)
            .values_list("key", flat=True)
        ]
        if set_aside:  # reported already; owed by --retry-quarantined
            pending = pending.exclude(**{f"{self.keyset.name}__in": set_aside})
        found = self._with_retries(pending.count)
        reswept = 0
        if found:
            sweep = Keyset(pending, self.job.key, self.keyset.upto)
            after = None

            def attempt() -> list[Any]:
                # Planned inside the transaction: a retry after a lost COMMIT reply finds
                # the rows it did already gone from ``pending`` and does not redo them.
                with self._locked_transaction():
                    keys = sweep.next_keys(after=after, limit=self.sizer.size)
                    if keys:
                        self._process(Chunk(keys=keys, keyset=sweep))
                    return keys

            while keys := self._with_retries(attempt):
                if self.stopper.requested:  # the run is interrupted, not failed: see run()
                    raise InterruptedError("stopped during the verification re-sweep")
                self._heartbeat()
                reswept += len(keys)
                after = keys[-1]
        remaining = self._with_retries(pending.count) if found else 0
        result = {
            "checked": self.progress.total,
            "stale_found": found,
            "reswept": reswept,
            "remaining": remaining,
        }
        self.log.info(events.VERIFIED, **result)
        return result
