"""THE chunk transaction. Every write a job makes, and every move of the checkpoint,
happens inside one, for a run's chunks, the quarantine's bisection, the verification's
re-sweep and the rehearsal alike (each is a mode of this one path, not a copy of it).

One transaction: (1) the per-chunk statement and lock timeouts; (2) the run row locked,
fenced on the lease, with the authoritative checkpoint and the operator's requests read
under the lock; (3) the next keys planned after the checkpoint; (4) the job's work; (5) the
checkpoint moved, and the outside effects the work recorded written (the outbox); (6)
COMMIT with stop signals held, so a chunk is all or nothing. A crash redoes at most the
chunk in flight, and a retry after an ambiguous commit (the connection died while COMMIT
was on the wire) re-reads the checkpoint and does not redo it.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from django.db import transaction

from batchjobs.chunk import Chunk
from batchjobs.database import set_local_timeouts
from batchjobs.job import ResumableJob
from batchjobs.keyset import Keyset
from batchjobs.options import Timeouts
from batchjobs.outbox import Outbox
from batchjobs.stopping import Stopper
from batchjobs.store import Controls, RunStore

if TYPE_CHECKING:
    from django.db.backends.base.base import BaseDatabaseWrapper


@dataclass(frozen=True)
class ChunkResult:
    rows: int
    seconds: float
    exhausted: bool = False
    changed: int | None = None  # what the job's process() said it changed, if it said


class ChunkUnit:
    def __init__(
        self,
        *,
        job: ResumableJob,
        keyset: Keyset,
        connection: BaseDatabaseWrapper,
        stopper: Stopper,
        timeouts: Timeouts,
        clock: Callable[[], float],
        store: RunStore | None = None,
        sql_values: dict[str, Any] | None = None,
        on_controls: Callable[[Controls], None] = lambda controls: None,
        rate_and_eta: Callable[[], tuple[float | None, float | None]] = lambda: (None, None),
        outbox: Outbox | None = None,
    ) -> None:
        self.job = job
        self.keyset = keyset
        self.connection = connection
        self.stopper = stopper
        self.timeouts = timeouts
        self.clock = clock
        self.store = store
        self.sql_values = sql_values
        self.on_controls = on_controls
        self.rate_and_eta = rate_and_eta
        self.outbox = outbox  # None: a rehearsal, whose effects are never recorded
        self.effects_seen = 0  # effects the job's process() asked for, kept or not

    @contextmanager
    def transaction(self, *, rollback: bool = False) -> Iterator[Any]:
        """The one transaction, yielding the checkpoint (decoded; ``None`` before the first
        chunk or without a run). Commits with stop signals held; ``rollback``: the
        rehearsal's mode, where everything is rolled back and there is no run row."""
        alias = self.connection.alias
        with self.stopper.released_on_exit(), transaction.atomic(using=alias):
            set_local_timeouts(
                self.connection,
                statement_seconds=self.timeouts.statement,
                lock_seconds=self.timeouts.lock,
            )
            cursor = None
            if self.store is not None:
                raw, controls, upto = self.store.lock()
                self.on_controls(controls)
                cursor = self.keyset.decode(raw)
                if (upto := self.keyset.decode(upto)) != self.keyset.upto:
                    # A slice's end moves when another worker takes half of what is left.
                    self.keyset = replace(self.keyset, upto=upto)
            yield cursor
            if rollback:
                transaction.set_rollback(True, using=alias)
            else:
                self.stopper.hold()  # from here to the end of COMMIT, signals wait

    def process(self, chunk: Chunk) -> int | None:
        """The work of one chunk: the job's ``process()``, or with ``--sql-side`` one
        ranged UPDATE with the job's database expressions."""
        if self.sql_values is not None:
            return int(chunk.queryset.update(**self.sql_values))
        if self.job.has_effects():
            chunk = replace(chunk, effects=[])
        changed = self.job.process(chunk)
        if chunk.effects:
            self.effects_seen += len(chunk.effects)
            if self.outbox is not None:
                self.outbox.record(chunk.effects)  # commits with the chunk, or not at all
        return None if changed is None else int(changed)

    def advance(self, last_key: Any, rows: int, *, set_aside: int = 0) -> None:
        """Move the checkpoint past ``last_key`` (inside the transaction, fenced)."""
        assert self.store is not None, "a rehearsal has no checkpoint"
        failpoint("before_checkpoint")
        rate, eta = self.rate_and_eta()
        self.store.advance(
            cursor=self.keyset.encode(last_key), rows=rows, rate=rate, eta=eta, set_aside=set_aside
        )

    def next(self, *, size: int) -> ChunkResult:
        """The next chunk after the checkpoint, processed and committed."""
        started = self.clock()
        with self.transaction() as cursor:
            if self.sql_values is not None:
                # SQL-side: no values travel, so neither do keys; only the range's end.
                planned = self.keyset.next_range(after=cursor, limit=size)
                if planned is None:
                    return ChunkResult(rows=0, seconds=0.0, exhausted=True)
                last, rows = planned
                changed: int | None = self.process_range(cursor, last)
                self.advance(last, rows)
                return ChunkResult(rows, self.clock() - started, changed=changed)
            keys = self.keyset.next_keys(after=cursor, limit=size)
            if not keys:
                return ChunkResult(rows=0, seconds=0.0, exhausted=True)
            changed = self.process(Chunk(keys=keys, keyset=self.keyset))
            self.advance(keys[-1], len(keys))
        return ChunkResult(len(keys), self.clock() - started, changed=changed)

    def process_range(self, after: Any, last: Any) -> int:
        assert self.sql_values is not None
        return int(self.keyset.between(after, last).update(**self.sql_values))

    def these(self, keys: Sequence[Any]) -> ChunkResult:
        """Exactly ``keys`` (the quarantine's halves), processed and committed."""
        started = self.clock()
        with self.transaction() as cursor:
            if cursor is not None and cursor in keys:
                # Part of this list committed already (an ambiguous commit): skip it.
                keys = keys[list(keys).index(cursor) + 1 :]
                if not keys:
                    return ChunkResult(rows=0, seconds=0.0)
            changed = self.process(Chunk(keys=keys, keyset=self.keyset))
            self.advance(keys[-1], len(keys))
        return ChunkResult(len(keys), self.clock() - started, changed=changed)


def failpoint(name: str) -> None:
    """A test-only fault injection point: with ``BATCHJOBS_FAILPOINT=NAME:N`` in the
    environment, the Nth time the process passes NAME it kills itself with SIGKILL, so a
    fault test can land a kill -9 exactly there (between the work and the checkpoint)."""
    spec = os.environ.get("BATCHJOBS_FAILPOINT")
    if not spec:
        return
    point, _, count = spec.partition(":")
    if point != name:
        return
    _FAILPOINT_HITS[name] = _FAILPOINT_HITS.get(name, 0) + 1
    if _FAILPOINT_HITS[name] >= int(count or 1):
        os.kill(os.getpid(), signal.SIGKILL)


_FAILPOINT_HITS: dict[str, int] = {}
