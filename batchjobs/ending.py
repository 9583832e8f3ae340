"""How a run ends: its final state recorded through the store (which gives the lease up),
the closing event, and the one sentence (and exit code) the operator is told.

The figures come from the run row, the one truth, not from what this process counted.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from django.db import DatabaseError, models
from django.utils import timezone

from batchjobs import events, retry
from batchjobs.conf import Settings
from batchjobs.database import reset_if_broken, table_bytes
from batchjobs.exceptions import DatabaseUnavailable, JobFailed, LeaseLost
from batchjobs.exit_codes import ExitCode
from batchjobs.hooks import Hooks
from batchjobs.job import Interruption
from batchjobs.models import State
from batchjobs.pacing import Stop
from batchjobs.progress import ProgressEstimator
from batchjobs.stopping import Stopper
from batchjobs.store import RunStore
from batchjobs.vacuuming import vacuum

if TYPE_CHECKING:
    from django.db.backends.base.base import BaseDatabaseWrapper
    from structlog.stdlib import BoundLogger

_SIZES = ("table_bytes_before", "table_bytes_after", "table_bytes_after_vacuum", "vacuum_seconds")


@dataclass(frozen=True)
class Outcome:
    run_id: int
    state: str
    exit_code: int
    message: str


class Ending:
    def __init__(
        self,
        *,
        job: str,
        store: RunStore,
        connection: BaseDatabaseWrapper,
        model: type[models.Model],
        progress: ProgressEstimator,
        stopper: Stopper,
        settings: Settings,
        clock: Callable[[], float],
        vacuum_lock: float | None,
        max_runtime: float | None,
        log: BoundLogger,
        hooks: Hooks,
    ) -> None:
        self.job = job
        self.store = store
        self.run_id = store.run_id
        self.connection = connection
        self.model = model
        self.clock = clock
        self.vacuum_lock = vacuum_lock  # None: no --vacuum
        self.max_runtime = max_runtime
        self.progress = progress
        self.stopper = stopper
        self.settings = settings
        self.log = log
        self.hooks = hooks  # called last, once the end is recorded and reported
        self._released = False

    def release(self, state: State, **fields: Any) -> None:
        """Leave the run in ``state`` and give the lease up (in its own transaction)."""
        if self._released:
            return
        try:
            reset_if_broken(self.connection)
            self.store.release(state, **fields)
        except DatabaseError:
            # A second stop signal cancels the statement in flight from another thread; a
            # cancel that comes late hits this one instead of the chunk's. The release is
            # fenced on the state and owner, so once more is safe.
            reset_if_broken(self.connection)
            self.store.release(state, **fields)
        self._released = True

    def done(self) -> int:
        """Rows done as the run row records them (what this process counted, if the
        database cannot say)."""
        recorded = self.store.recorded_done()
        if recorded is not None:
            self.progress.done = recorded
        return self.progress.done

    def stopped(self, stop: Stop) -> Outcome:
        """The run stopped before its rows ran out: paused, cancelled, or interrupted."""
        if stop is Stop.PAUSE:
            return self.parked(State.PAUSED, ExitCode.PAUSED)
        if stop is Stop.CANCEL:
            return self.parked(State.CANCELLED, ExitCode.CANCELLED)
        if stop is Stop.MAX_RUNTIME:
            return self.interrupted(
                f"--max-runtime {self.max_runtime:g}s reached",
                exit_code=ExitCode.MAX_RUNTIME,
                reason=Interruption.MAX_RUNTIME,
            )
        return self.interrupted(self.stopper.signal_name or "a stop request")

    def parked(self, state: State, code: ExitCode) -> Outcome:
        finished = {"finished_at": timezone.now()} if state == State.CANCELLED else {}
        with contextlib.suppress(DatabaseError):
            self.release(state, requested_action="", **finished)
        how = (
            f"continue with `runjob {self.job} --resume`"
            if state == State.PAUSED
            else "the run will not be continued; its record stays for inspection"
        )
        message = f"Run #{self.run_id} of {self.job} is {state}: {how}."
        event = events.PAUSED if state == State.PAUSED else events.CANCELLED
        done = self.done()
        self.log.warning(event, done=done, total=self.progress.total, message=message)
        reason = Interruption.PAUSE if state == State.PAUSED else Interruption.CANCEL
        self.hooks.interrupted(reason, state=state.value, done=done, total=self.progress.total)
        return Outcome(self.run_id, state, int(code), message)

    def interrupted(
        self,
        why: str,
        *,
        exit_code: int | None = None,
        reason: Interruption = Interruption.SIGNAL,
    ) -> Outcome:
        # A database that is down cannot record it; the lease then goes stale and the next
        # run takes the run over all the same.
        with contextlib.suppress(DatabaseError):
            self.release(State.INTERRUPTED)
        done = self.done()
        resume = f"python manage.py runjob {self.job}"
        message = (
            f"Run #{self.run_id} of {self.job} interrupted by {why} after {done:,} of "
            f"{self.progress.total or 0:,} rows; every committed chunk is kept. "
            f"Resume with: {resume}"
        )
        self.log.warning(
            events.INTERRUPTED,
            done=done,
            total=self.progress.total,
            signal=self.stopper.signal_name,
            cause=why,
            resume_command=resume,
        )
        self.hooks.interrupted(
            reason, state=State.INTERRUPTED.value, done=done, total=self.progress.total
        )
        code = self.stopper.exit_code if exit_code is None else int(exit_code)
        return Outcome(self.run_id, State.INTERRUPTED, code, message)

    def database_lost(self, exc: BaseException) -> DatabaseUnavailable:
        """The database stayed away through every retry: nothing is wrong with the run."""
        error_class, error = retry.describe(exc)
        with contextlib.suppress(Exception):  # it is most likely still gone
            self.release(State.INTERRUPTED, error_class=error_class, error_message=error)
        self.log.error(
            events.INTERRUPTED,
            done=self.progress.done,
            cause="database lost",
            error_class=error_class,
            error=error,
            resume_command=f"python manage.py runjob {self.job}",
        )
        self.hooks.interrupted(
            Interruption.DATABASE_LOST,
            state=State.INTERRUPTED.value,
            done=self.progress.done,
            total=self.progress.total,
        )
        return DatabaseUnavailable(
            f"Run #{self.run_id} of {self.job} lost its database and gave up after "
            f"{self.settings.MAX_ATTEMPTS} attempts ({error}). Every committed chunk is kept: "
            f"run `runjob {self.job}` again when the database is back."
        )

    def lease_lost(self, exc: LeaseLost) -> None:
        """Another worker has the run now (or it was restarted): this process wrote nothing
        after that and writes nothing now; the hook is told the state the run row shows."""
        self.log.error(events.FAILED, error_class="LeaseLost", error=str(exc))
        state = ""
        with contextlib.suppress(DatabaseError):
            state = str(self.store.read().state)
        self.hooks.interrupted(
            Interruption.LEASE_LOST, state=state, done=self.done(), total=self.progress.total
        )

    def failed(self, exc: BaseException) -> JobFailed:
        error_class, error = retry.describe(exc)
        # The database may be gone; then the lease goes stale and the next run takes over.
        with contextlib.suppress(Exception):
            self.release(State.FAILED, error_class=error_class, error_message=error)
        self.log.error(
            events.FAILED,
            error_class=error_class,
            error=error,
            done=(done := self.done()),
            quarantined=self.progress.set_aside,
        )
        self.hooks.failed(exc, done=done, total=self.progress.total)
        return JobFailed(
            f"Run #{self.run_id} of {self.job} failed: {error} ({error_class}). "
            f"Its checkpoint is kept; after a fix, `runjob {self.job}` resumes it."
        )

    def completed(
        self, *, verification: dict[str, Any], elapsed: float, done_at_start: int, changed: int
    ) -> Outcome:
        """Every chunk done and verified: record the final state, VACUUM if asked, say so."""
        stats = dict(self.store.read().stats)
        stats["table_bytes_after"] = table_bytes(self.connection, self.model)
        quarantined = self.store.unresolved_count()
        state = State.QUARANTINED if quarantined else State.SUCCEEDED
        self.release(
            state,
            finished_at=timezone.now(),
            verification=verification,
            stats=stats,
            error_class="",
            error_message="",
        )
        done = self.done()
        note = ""
        if self.vacuum_lock is not None:
            figures, note = vacuum(
                connection=self.connection,
                model=self.model,
                stopper=self.stopper,
                lock_seconds=self.vacuum_lock,
                clock=self.clock,
                log=self.log,
            )
            if figures:
                stats.update(figures)
                self.store.save_finished_stats(stats)
        self.log.info(
            events.FINISHED,
            state=state.value,
            done=done,
            total=self.progress.total,
            quarantined=quarantined,
            changed=changed,
            duration_seconds=round(elapsed, 3),
            rate=round((done - done_at_start) / elapsed, 1) if elapsed else None,
            verification=verification,
            **{k: stats.get(k) for k in _SIZES},
        )
        self.hooks.completed(state=state.value, done=done, total=self.progress.total)
        return self.report(state, quarantined, note=note)

    def report(self, state: State, quarantined: int, *, note: str = "") -> Outcome:
        if quarantined:
            keys = self.store.unresolved_keys(limit=20)
            message = (
                f"Run #{self.run_id} of {self.job} finished with {quarantined} quarantined "
                f"rows (keys {keys}); fix them, then `runjob {self.job} --retry-quarantined`."
            )
            return Outcome(self.run_id, state, int(ExitCode.QUARANTINED), message)
        message = f"Run #{self.run_id} of {self.job} succeeded: {self.progress.done:,} rows."
        return Outcome(self.run_id, state, int(ExitCode.SUCCEEDED), message + note)
