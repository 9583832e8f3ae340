"""Quarantine: bisect a failing chunk down to the rows that fail alone, set them aside,
and carry on; a resumed run (or ``--retry-quarantined``) retries them first.

Built on the one chunk transaction (``ChunkUnit``) and the run's store: a half is
processed exactly as a chunk is, and a row set aside moves the checkpoint in the same
fenced transaction that records it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from batchjobs import events, retry
from batchjobs.attempts import Attempts
from batchjobs.chunk import Chunk
from batchjobs.exceptions import LeaseLost, TooManyQuarantined
from batchjobs.progress import ProgressEstimator
from batchjobs.stopping import Stopper
from batchjobs.store import RunStore
from batchjobs.unit import ChunkUnit

if TYPE_CHECKING:
    from structlog.stdlib import BoundLogger

# SQLSTATE classes no single row causes: a missing column or table, a permission, an
# unsupported feature, a transaction state, resources. Bisecting on them would set aside
# innocent rows; the run fails instead, its checkpoint intact.
_NOT_ROW_ERRORS = frozenset({"42", "0A", "28", "3D", "3F", "25", "53", "54", "58", "XX"})
_SQLITE_STRUCTURAL = re.compile(
    r"^(no such (table|column|function)|.* has no column named|attempt to write a readonly)"
)


def is_row_error(exc: BaseException, *, stopping: bool = False) -> bool:
    """Could one bad row cause this? A constraint, bad data or the job's own code can;
    a lost lease, a stop request or a database that keeps failing cannot."""
    if stopping or isinstance(exc, LeaseLost):
        return False
    code = retry.sqlstate(exc)
    if code is not None and code[:2] in _NOT_ROW_ERRORS:
        return False
    if code is None and _SQLITE_STRUCTURAL.search(str(exc)):
        return False  # SQLite has no SQLSTATE: its message says the same thing
    return retry.classify(exc) in {retry.ErrorKind.PERMANENT, retry.ErrorKind.UNIQUE_VIOLATION}


class Quarantine:
    def __init__(
        self,
        *,
        unit: ChunkUnit,
        store: RunStore,
        attempts: Attempts,
        progress: ProgressEstimator,
        stopper: Stopper,
        limit: int,
        log: BoundLogger,
    ) -> None:
        self.unit = unit
        self.keyset = unit.keyset
        self.store = store
        self.attempts = attempts
        self.progress = progress
        self.stopper = stopper
        self.limit = limit
        self.log = log

    def is_row_error(self, exc: BaseException) -> bool:
        return is_row_error(exc, stopping=self.stopper.requested)

    def settle(self, keys: Sequence[Any], *, first_error: BaseException | None = None) -> int:
        """Process ``keys`` in halves until the rows that fail alone are found and set
        aside; return the rows done (a row set aside is not done)."""
        if not keys:
            return 0
        if first_error is None:
            try:
                return self.attempts(lambda: self.unit.these(keys)).rows
            except Exception as exc:
                if not self.is_row_error(exc):
                    raise
                first_error = exc
        if len(keys) == 1:
            self._set_aside(keys[0], first_error)
            return 0
        middle = len(keys) // 2
        return self.settle(keys[:middle]) + self.settle(keys[middle:])

    def _set_aside(self, key: Any, exc: BaseException) -> None:
        error_class, error = retry.describe(exc)
        with self.unit.transaction() as cursor:
            if cursor == key:  # recorded by an attempt whose COMMIT reply was lost
                return
            count = self.store.unresolved_count()
            if count >= self.limit:
                raise TooManyQuarantined(
                    f"{count} rows are quarantined already (limit {self.limit}, "
                    f"--max-quarantined) and key {self.keyset.encode(key)} failed too: {error}"
                ) from None
            self.store.quarantine(self.keyset.encode(key), error_class=error_class, error=error)
            # The cursor moves past the row, but it is not done: it still holds its old
            # value, so it counts as quarantined only.
            self.unit.advance(key, 0, set_aside=1)
        self.progress.set_aside += 1
        self.log.warning(
            events.QUARANTINED, key=self.keyset.encode(key), error_class=error_class, error=error
        )

    def retry_owed(self) -> None:
        """A resumed run first owes the rows it set aside; so does --retry-quarantined."""
        for entry in self.store.unresolved():
            key = self.keyset.decode(entry.key)
            try:
                self.attempts(_resolver(self.unit, self.store, entry.pk, key))
            except Exception as exc:
                if not self.is_row_error(exc):
                    raise
                error_class, error = retry.describe(exc)
                self.store.note_quarantine_error(entry.pk, error_class=error_class, error=error)
                continue
            self.progress.done += 1
            self.progress.set_aside = max(0, self.progress.set_aside - 1)


def _resolver(unit: ChunkUnit, store: RunStore, entry_id: int, key: Any) -> Callable[[], None]:
    def attempt() -> None:
        with unit.transaction():
            if not store.is_unresolved(entry_id):
                return
            unit.process(Chunk(keys=[key], keyset=unit.keyset))
            store.resolve(entry_id)

    return attempt
