"""Quarantine: bisect a failing chunk down to the rows that fail alone, set them aside,
and carry on; a resumed run (or ``--retry-quarantined``) retries them first.

A mixin of ``Runner``: these steps use its chunk transaction, retries and lease.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from django.db.models import F
from django.utils import timezone

from batchjobs import events, retry
from batchjobs.chunk import Chunk
from batchjobs.exceptions import LeaseLost, TooManyQuarantined
from batchjobs.models import JobRun, QuarantinedRow

# SQLSTATE classes no single row causes: a missing column or table, a permission, an
# unsupported feature, a transaction state, resources. Bisecting on them would set aside
# innocent rows; the run fails instead, its checkpoint intact.
_NOT_ROW_ERRORS = frozenset({"42", "0A", "28", "3D", "3F", "25", "53", "54", "58", "XX"})
_SQLITE_STRUCTURAL = re.compile(
    r"^(no such (table|column|function)|.* has no column named|attempt to write a readonly)"
)


class QuarantineSteps:
    def _settle(self, keys: Sequence[Any], *, first_error: BaseException | None = None) -> int:
        """Process ``keys`` in halves until the rows that fail alone are found and set aside."""
        if not keys:
            return 0
        if first_error is None:
            try:
                return self._with_retries(lambda: self._chunk(keys=keys)).rows
            except Exception as exc:
                if not self._row_error(exc):
                    raise
                first_error = exc
        if len(keys) == 1:
            self._quarantine(keys[0], first_error)
            return 0  # set aside, not done: only committed work counts as done
        middle = len(keys) // 2
        return self._settle(keys[:middle]) + self._settle(keys[middle:])

    def _row_error(self, exc: BaseException) -> bool:
        """Could one bad row cause this? A constraint, bad data or the job's own code can;
        a lost lease, a stop request or a database that keeps failing cannot."""
        if self.stopper.requested or isinstance(exc, LeaseLost):
            return False
        code = retry.sqlstate(exc)
        if code is not None and code[:2] in _NOT_ROW_ERRORS:
            return False
        if code is None and _SQLITE_STRUCTURAL.search(str(exc)):
            return False  # SQLite has no SQLSTATE: its message says the same thing
        return retry.classify(exc) in {retry.ErrorKind.PERMANENT, retry.ErrorKind.UNIQUE_VIOLATION}

    def _max_quarantined(self) -> int:
        if self.options.max_quarantined is not None:
            return self.options.max_quarantined
        return self.settings.MAX_QUARANTINED

    def _quarantine(self, key: Any, exc: BaseException) -> None:
        error_class, error = retry.describe(exc)
        limit = self._max_quarantined()
        with self._locked_transaction() as row:
            if self.keyset.decode(row["cursor"]) == key:
                return
            count = (
                QuarantinedRow.objects.using(self.alias)
                .filter(run_id=self.run_id, resolved_at__isnull=True)
                .count()
            )
            if count >= limit:
                raise TooManyQuarantined(
                    f"{count} rows are quarantined already (limit {limit}, --max-quarantined) "
                    f"and key {self.keyset.encode(key)} failed too: {error}"
                ) from None
            QuarantinedRow.objects.using(self.alias).create(
                run_id=self.run_id,
                key=self.keyset.encode(key),
                error_class=error_class,
                error_message=error,
            )
            # The cursor moves past the row, but it is not done: it still holds its old
            # value, so it counts as quarantined only.
            self._advance(key, 0, quarantined=F("quarantined") + 1)
        self.progress.set_aside += 1
        self.log.warning(
            events.QUARANTINED, key=self.keyset.encode(key), error_class=error_class, error=error
        )

    def _retry_quarantined_rows(self) -> None:
        """A resumed run first owes the rows it set aside; so does --retry-quarantined."""
        pending = list(
            QuarantinedRow.objects.using(self.alias).filter(
                run_id=self.run_id, resolved_at__isnull=True
            )
        )
        for entry in pending:
            key = self.keyset.decode(entry.key)

            def attempt(entry: QuarantinedRow = entry, key: Any = key) -> None:
                with self._locked_transaction():
                    unresolved = QuarantinedRow.objects.using(self.alias).filter(
                        pk=entry.pk, resolved_at__isnull=True
                    )
                    if not unresolved.exists():  # committed by an attempt whose reply was lost
                        return
                    self._process(Chunk(keys=[key], keyset=self.keyset))
                    QuarantinedRow.objects.using(self.alias).filter(pk=entry.pk).update(
                        resolved_at=timezone.now()
                    )
                    JobRun.objects.using(self.alias).filter(pk=self.run_id).update(
                        quarantined=F("quarantined") - 1, done=F("done") + 1
                    )

            try:
                self._with_retries(attempt)
                self.progress.done += 1
                self.progress.set_aside = max(0, self.progress.set_aside - 1)
            except Exception as exc:
                if not self._row_error(exc):
                    raise
                error_class, error = retry.describe(exc)
                QuarantinedRow.objects.using(self.alias).filter(pk=entry.pk).update(
                    error_class=error_class, error_message=error
                )
