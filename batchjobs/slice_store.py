"""The only code that reads or writes the slices of a sliced run (``JobSlice``).

A worker owns one slice at a time. ``SliceStore`` is that slice as its owner sees it, with
the face of ``RunStore`` that the chunk transaction, the pacer and the quarantine use: every
write is fenced on the slice's owner, so a worker whose slice was taken over (its heartbeat
went stale: SIGSTOP, a lost host) writes nothing more. The run row is only read on the chunk
path, never locked or written, so workers never queue on it.

The fence against a run-level change (restart, cancel, pause) is the same row lock: a run
leaving RUNNING clears the owner of every one of its slices in the transaction that changes
its state (``store.transition``), which waits for the chunk in flight on each slice and makes
the next one match no row.

The module functions claim, split and sum slices, for workers and for whoever reports on
the run.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.db import IntegrityError, OperationalError, connections, transaction
from django.db.models import F, Max, QuerySet, Sum
from django.db.models.functions import Coalesce, Now

from batchjobs import conf
from batchjobs.database import now as database_now
from batchjobs.database import set_local_timeouts
from batchjobs.exceptions import LeaseLost
from batchjobs.keyset import Keyset
from batchjobs.lease import Owner, owner_alive, run_owner_alive
from batchjobs.models import JobRun, JobSlice, State
from batchjobs.retry import ErrorKind, classify
from batchjobs.slicing import Remaining, choose_split
from batchjobs.store import Controls, RunStore

# How long a split or the last worker's end waits for a row another session holds.
LOCK_WAIT = 5.0


class SliceStore(RunStore):
    """One slice, as the worker that owns it sees it."""

    def __init__(
        self, *, alias: str, run_id: int, job: str, owner: Owner, slice_id: int, number: int
    ) -> None:
        super().__init__(alias=alias, run_id=run_id, job=job, owner=owner)
        self.slice_id = slice_id
        self.number = number

    def _slice(self) -> QuerySet[JobSlice]:
        return JobSlice.objects.using(self.alias).filter(
            pk=self.slice_id, owner_token=self.owner.token, finished_at__isnull=True
        )

    def lock(self) -> tuple[Any, Controls, Any]:
        """Inside the chunk's transaction: lock this slice if this worker still owns it (and
        its run still runs); its checkpoint and end, and the run's requests, with it."""
        found = self._slice().select_for_update(of=("self",)).values("cursor", "upper").first()
        run = (
            JobRun.objects.using(self.alias)
            .filter(pk=self.run_id)
            .values("state", "requested_action", "tuning")
            .first()
        )
        if found is None or run is None or run["state"] != State.RUNNING:
            raise self.lease_lost()
        return (
            found["cursor"],
            Controls(run["requested_action"], run["tuning"]),
            found["upper"],
        )

    def cursor(self) -> Any:
        row = JobSlice.objects.using(self.alias).filter(pk=self.slice_id).values("cursor").first()
        return row["cursor"] if row else None

    def recorded_done(self) -> int | None:
        return totals(self.run_id, using=self.alias).done

    def advance(
        self, *, cursor: Any, rows: int, rate: float | None, eta: float | None, set_aside: int = 0
    ) -> None:
        updated = self._slice().update(
            cursor=cursor,
            done=F("done") + rows,
            chunks=F("chunks") + 1,
            retries=F("retries") + self._retries,
            quarantined=F("quarantined") + set_aside,
            heartbeat_at=Now(),
            rate=rate,
        )
        if not updated:
            raise self.lease_lost()
        self._retries, self._retry_notes = 0, []

    def heartbeat(self) -> None:
        if not self._slice().update(heartbeat_at=Now()):
            raise self.lease_lost()

    def finish(self) -> None:
        """Every row of the slice is done: it leaves the pool for good. (Retried after a
        lost COMMIT reply, it finds the slice finished already, and that is fine.)"""
        if self._slice().update(finished_at=Now(), owner_token="", heartbeat_at=Now()):
            return
        finished = JobSlice.objects.using(self.alias).filter(
            pk=self.slice_id, finished_at__isnull=False
        )
        if not finished.exists():
            raise self.lease_lost()

    def give_up(self) -> None:
        """Stop owning the slice (a stop, a hand-off): the next worker starts at its cursor.
        A slice no longer ours is left as it is."""
        self._slice().update(owner_token="", retries=F("retries") + self._retries)
        self._retries = 0

    def resolve(self, entry_id: int) -> None:
        if self._unresolved().filter(pk=entry_id).update(resolved_at=Now()):
            self._slice().update(quarantined=F("quarantined") - 1, done=F("done") + 1)

    def lease_lost(self, run: JobRun | None = None) -> LeaseLost:
        me = f"this worker (pid {self.owner.pid})"
        tail = f"{me} wrote nothing to it after that and stops"
        row = JobSlice.objects.using(self.alias).filter(pk=self.slice_id).first()
        state = (
            JobRun.objects.using(self.alias)
            .filter(pk=self.run_id)
            .values_list("state", flat=True)
            .first()
        )
        what = f"Slice {self.number} of run #{self.run_id} of {self.job}"
        if state is not None and state != State.RUNNING:
            return LeaseLost(f"Run #{self.run_id} of {self.job} is {state} now; {tail}.")
        if row is not None and row.owner_token:
            how = f"was taken over by pid {row.owner_pid} on {row.owner_host}"
        else:
            how = "was given up"
        return LeaseLost(
            f"{what} {how} while {me} was not heard from (its heartbeat went stale: frozen, "
            f"suspended or cut off); {tail}."
        )


# -- for workers looking for work, and for reports --------------------------------------


def create_first(run: JobRun, *, using: str, done_upto: Any = None) -> None:
    """The slices of a new sliced run: one covering everything (workers split it as they
    arrive). A single-process run made sliced keeps what it did as a finished slice."""
    rest = max(0, (run.total or 0) - run.done)
    number = 0
    if run.done or done_upto is not None:
        JobSlice.objects.using(using).create(
            run=run, number=0, upper=done_upto, cursor=done_upto, planned=run.done,
            done=run.done, chunks=run.chunks, quarantined=run.quarantined,
            finished_at=run.heartbeat_at or run.created_at,
        )  # fmt: skip
        number = 1
    JobSlice.objects.using(using).create(
        run=run, number=number, lower=done_upto, cursor=done_upto, upper=run.high_water_mark,
        planned=rest,
    )  # fmt: skip


def _stale_after() -> timedelta:
    return timedelta(seconds=conf.get().STALE_AFTER_SECONDS)


def slice_alive(piece: JobSlice, *, now: Any, claimant_pid: int | None = None) -> bool:
    return owner_alive(
        owner_token=piece.owner_token,
        owner_host=piece.owner_host,
        owner_pid=piece.owner_pid,
        heartbeat_at=piece.heartbeat_at,
        now=now,
        stale_after=_stale_after(),
        claimant_pid=claimant_pid,
    )


def live_owners(run_id: int, *, using: str, other_than: Owner | None = None) -> list[JobSlice]:
    """The slices of the run that a live worker (``other_than`` this one) owns now."""
    owned = JobSlice.objects.using(using).filter(run_id=run_id).exclude(owner_token="")
    if other_than is not None:
        owned = owned.exclude(owner_token=other_than.token)
    pieces = list(owned)
    if not pieces:
        return []
    now = database_now(connections[using])
    return [piece for piece in pieces if slice_alive(piece, now=now)]


def who(run: JobRun, *, using: str = "default") -> str:
    """Who works on ``run``, for a sentence: its process, or a shared run's live workers."""
    if not run.sliced or run_owner_alive(run, alias=using):
        return f"pid {run.owner_pid} on {run.owner_host}"
    live = live_owners(run.pk, using=using)
    hosts = ", ".join(sorted({p.owner_host for p in live})) or "no host"
    return f"{len(live)} worker{'s' if len(live) != 1 else ''} on {hosts}"


def unfinished_count(run_id: int, *, using: str) -> int:
    return JobSlice.objects.using(using).filter(run_id=run_id, finished_at__isnull=True).count()


def claim(run_id: int, owner: Owner, *, using: str) -> JobSlice | None:
    """An unfinished slice nobody alive owns, now this worker's (``SKIP LOCKED``: workers
    claiming at once take different slices and never wait for each other)."""
    with transaction.atomic(using=using):
        if not _running(run_id, using=using):
            return None
        open_ = JobSlice.objects.using(using).filter(run_id=run_id, finished_at__isnull=True)
        mine = open_.filter(owner_token=owner.token).first()
        if mine is not None:
            return mine  # claimed (or split off) by an attempt whose COMMIT reply was lost
        now = database_now(connections[using])
        candidates = (
            JobSlice.objects.using(using)
            .select_for_update(skip_locked=True, of=("self",))
            .filter(run_id=run_id, finished_at__isnull=True)
            .order_by("number")
        )
        for piece in candidates:
            if piece.owner_token and slice_alive(piece, now=now, claimant_pid=owner.pid):
                continue
            _own(piece, owner, using=using)
            return piece
    return None


def split(
    run_id: int, owner: Owner, keyset: Keyset, *, chunk_size: int, using: str
) -> JobSlice | None:
    """Take the second half of the rows left in the slice with the most left, as a new
    slice owned by this worker; ``None`` when no slice is worth splitting.

    The owner of the split slice holds its row for each chunk: the split waits at most one
    chunk for it, then moves the slice's end under the same lock the owner's next chunk
    reads it under, so no row is ever in two slices."""
    for _ in range(5):
        try:
            return _split(run_id, owner, keyset, chunk_size=chunk_size, using=using)
        except (_Raced, IntegrityError):  # two workers numbering a new slice at once, too
            continue
        except OperationalError as exc:
            if classify(exc) is not ErrorKind.LOCK_TIMEOUT:
                raise
            return None  # its owner's row stayed locked: leave that slice to its owner
    return None


class _Raced(Exception):
    """The slice changed between the plan and its lock: plan again."""


def _split(
    run_id: int, owner: Owner, keyset: Keyset, *, chunk_size: int, using: str
) -> JobSlice | None:
    open_ = JobSlice.objects.using(using).filter(run_id=run_id, finished_at__isnull=True)
    plan = choose_split(
        (Remaining(p.pk, p.remaining) for p in open_.only("planned", "done")),
        chunk_size=chunk_size,
    )
    if plan is None or not _running(run_id, using=using):
        return None
    seen = open_.filter(pk=plan.slice_id).first()
    if seen is None:
        raise _Raced  # it finished while we looked
    # The middle row is found before the slice is locked: on a large slice that scan takes
    # a while, and its owner must not wait for it (it waits at most for our UPDATE).
    after, upper = keyset.decode(seen.cursor), keyset.decode(seen.upper)
    left = keyset.between(after, upper).order_by(keyset.name)
    keys = left.values_list(keyset.name, flat=True)
    middle = keys[plan.keep - 1 : plan.keep].first()
    if middle is None or middle == upper:
        # Fewer rows than planned (deleted since): plan what is there and look again.
        open_.filter(pk=seen.pk).update(planned=seen.done + left.count())
        raise _Raced
    with transaction.atomic(using=using):
        # Its owner holds the row for one chunk; a lost host's open transaction could hold
        # it for ever: then this worker looks for other work.
        set_local_timeouts(connections[using], statement_seconds=None, lock_seconds=LOCK_WAIT)
        piece = open_.select_for_update(of=("self",)).filter(pk=seen.pk).first()
        if piece is None or piece.upper != seen.upper:
            raise _Raced  # finished, or split by another worker meanwhile
        cursor = keyset.decode(piece.cursor)
        if cursor is not None and not cursor < middle:
            raise _Raced  # its owner got past the middle meanwhile
        number = JobSlice.objects.using(using).filter(run_id=run_id).aggregate(n=Max("number"))["n"]
        open_.filter(pk=piece.pk).update(upper=keyset.encode(middle), planned=seen.done + plan.keep)
        return JobSlice.objects.using(using).create(
            run_id=run_id,
            number=number + 1,
            lower=keyset.encode(middle),
            cursor=keyset.encode(middle),
            upper=piece.upper,
            planned=plan.give,
            owner_token=owner.token,
            owner_host=owner.host,
            owner_pid=owner.pid,
            heartbeat_at=Now(),
        )


def _own(piece: JobSlice, owner: Owner, *, using: str) -> None:
    JobSlice.objects.using(using).filter(pk=piece.pk).update(
        owner_token=owner.token, owner_host=owner.host, owner_pid=owner.pid, heartbeat_at=Now()
    )
    piece.owner_token, piece.owner_host, piece.owner_pid = owner.token, owner.host, owner.pid


def _running(run_id: int, *, using: str) -> bool:
    state = JobRun.objects.using(using).filter(pk=run_id).values_list("state", flat=True).first()
    return state == State.RUNNING


def release_all(run_id: int, *, using: str) -> None:
    """Every slice of the run without an owner: said in the transaction that takes the run
    out of RUNNING, it waits for each chunk in flight and fences the next."""
    JobSlice.objects.using(using).filter(run_id=run_id).update(owner_token="")


def described(run_id: int, *, using: str) -> list[dict[str, Any]]:
    """The run's slices for a report: range, checkpoint, counts, and ``state`` (done; working:
    a live worker owns it; free: waiting for one, or its worker is gone)."""
    pieces = list(JobSlice.objects.using(using).filter(run_id=run_id).order_by("number"))
    now = database_now(connections[using]) if pieces else None
    return [
        {
            "number": p.number,
            "lower": p.lower,
            "upper": p.upper,
            "cursor": p.cursor,
            "done": p.done,
            "planned": p.planned,
            "state": "done"
            if p.finished_at is not None
            else "working"
            if p.owner_token and slice_alive(p, now=now)
            else "free",
            "owner": f"pid {p.owner_pid} on {p.owner_host}" if p.owner_token else None,
        }
        for p in pieces
    ]


@dataclass(frozen=True)
class Totals:
    done: int = 0
    chunks: int = 0
    retries: int = 0
    quarantined: int = 0
    slices: int = 0
    unfinished: int = 0
    rate: float = 0.0  # the sum of the live workers' recent rates


def totals(run_id: int, *, using: str) -> Totals:
    """The run's counters: the sums over its slices."""
    rows = JobSlice.objects.using(using).filter(run_id=run_id)
    zero = Coalesce
    sums = rows.aggregate(
        done=zero(Sum("done"), 0),
        chunks=zero(Sum("chunks"), 0),
        retries=zero(Sum("retries"), 0),
        quarantined=zero(Sum("quarantined"), 0),
    )
    pieces = list(rows.values("finished_at", "owner_token", "rate"))
    return Totals(
        **sums,
        slices=len(pieces),
        unfinished=sum(1 for p in pieces if p["finished_at"] is None),
        rate=sum(p["rate"] or 0.0 for p in pieces if p["owner_token"]),
    )


def roll_up(
    run_id: int,
    *,
    using: str,
    rate: float | None = None,
    eta: float | None = None,
    with_rate: bool = True,
) -> Totals:
    """Write the slices' sums to the run row, for listjobs and the admin (not on the chunk
    path: between chunks, at most once per progress interval)."""
    sums = totals(run_id, using=using)
    fields: dict[str, Any] = {
        "done": sums.done,
        "chunks": sums.chunks,
        "quarantined": sums.quarantined,
    }
    if rate is not None:  # the coordinator's estimate, from the sums over time
        fields.update(rate=rate, eta_seconds=eta)
    elif with_rate and sums.rate:  # a worker's: the live workers' recent rates, summed
        total = JobRun.objects.using(using).filter(pk=run_id).values_list("total", flat=True)
        left = max(0, (total.first() or 0) - sums.done)
        fields.update(rate=sums.rate, eta_seconds=left / sums.rate)
    JobRun.objects.using(using).filter(pk=run_id, state=State.RUNNING).update(**fields)
    return sums
