"""One worker of a sliced run: claim a slice (or split the largest one left), run chunks on
it through the same collaborators as a single-process run, and when there is no work left
for it, end the run if it is the last worker out.

Whichever way a worker stops, it first gives its slice up; then, under the run row's lock,
the last worker out (no other live owner) records the run's end: a stop request becomes
paused, cancelled or failed, every slice finished becomes the verification and success of a
single-process run, anything else is interrupted. A worker that is not last leaves the run to
the others. A worker on Django's Tasks framework (``hand_off_after``) gives its slice up when
its time is over and says there is more, so that its task enqueues a successor.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from django.db import DatabaseError, transaction
from django.db.models.functions import Now

from batchjobs import events, registry, retry
from batchjobs import slice_store as slices
from batchjobs.database import cancel_statement, reset_if_broken, set_local_timeouts
from batchjobs.exceptions import BatchJobError, InvalidOption, LeaseLost, RunNotResumable
from batchjobs.exit_codes import ExitCode
from batchjobs.job import ResumableJob
from batchjobs.lease import run_owner_alive
from batchjobs.models import JobRun, JobSlice, State
from batchjobs.options import RunOptions
from batchjobs.pacing import Stop
from batchjobs.runner import Runner
from batchjobs.slice_store import SliceStore
from batchjobs.stopping import ForcedStop, Stopper
from batchjobs.store import transition

FAIL = "fail"  # the requested action a failing worker leaves for the others


@dataclass(frozen=True)
class WorkResult:
    run_id: int
    state: str  # the run's state when this worker stopped
    more: bool  # the run has work left and this worker only stopped because its time was up
    message: str
    exit_code: int = 0


class SliceWorker(Runner):
    def __init__(
        self,
        job: ResumableJob,
        options: RunOptions | None = None,
        *,
        run_id: int,
        hand_off_after: float | None = None,
        rolls_up: bool = True,
        stopper: Stopper | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(job, options, stopper=stopper, clock=clock)
        self.run_id = run_id
        self.hand_off_after = hand_off_after
        # Writes the workers' summed rate and ETA to the run row between chunks; not when a
        # coordinator does (its own estimate, which a worker's would overwrite).
        self.rolls_up = rolls_up
        self.began = clock()
        self.failure: BaseException | None = None

    def _time_left(self) -> float | None:
        limits = [x for x in (self.options.max_runtime, self.hand_off_after) if x is not None]
        return None if not limits else max(0.0, min(limits) - (self.clock() - self.began))

    def _handing_off(self) -> bool:
        """Out of time because a task's turn is over, not because of --max-runtime."""
        if self.hand_off_after is None:
            return False
        limit = self.options.max_runtime
        return limit is None or self.hand_off_after < limit

    def work(self) -> WorkResult:
        with (
            retry.hiding(self.job.sensitive_values()),
            self.stopper.installed(on_force=lambda: cancel_statement(self.connection)),
        ):
            run = JobRun.objects.using(self.alias).filter(pk=self.run_id).first()
            if run is None or not run.sliced or run.job != self.job.name:
                raise RunNotResumable(f"Run #{self.run_id} of {self.job.name} is not a sliced run.")
            if run.state != State.RUNNING:
                return self._result(run, f"Run #{run.pk} of {self.job.name} is {run.state}.")
            job = self.job.for_run(run.parameters, run.pk)
            if job is not self.job:
                self._use(job)
            self.log = self.log.bind(run_id=run.pk, worker=self.owner.pid)
            self._assemble(run)  # run-wide collaborators until a slice is claimed
            try:
                stop = self._slices(run)
            except ForcedStop:
                stop = Stop.SIGNAL
            except LeaseLost as exc:
                self.log.error(events.FAILED, error_class="LeaseLost", error=str(exc))
                return WorkResult(run.pk, State.RUNNING, False, str(exc), int(ExitCode.BUSY))
            except DatabaseError as exc:
                if retry.classify(exc) is not retry.ErrorKind.CONNECTION_LOST:
                    raise
                return self._database_lost(run, exc)
            try:
                return self.attempts(lambda: self._conclude(run, stop))
            except DatabaseError as exc:
                # Its slice is given up already: the next worker or run records the end.
                error_class, error = retry.describe(exc)
                self.log.error(events.FAILED, error_class=error_class, error=error)
                message = (
                    f"Run #{run.pk} of {self.job.name}: this worker could not record how "
                    f"the run ended ({error}); `runjob {self.job.name}` will."
                )
                code = ExitCode.DATABASE_UNAVAILABLE
                if retry.classify(exc) is not retry.ErrorKind.CONNECTION_LOST:
                    code = ExitCode.FAILED
                return WorkResult(run.pk, State.RUNNING, False, message, int(code))

    def _database_lost(self, run: JobRun, exc: BaseException) -> WorkResult:
        """Every retry failed to reach the database: nothing can be recorded (the slice's
        lease goes stale, and the next worker or run takes it from its checkpoint)."""
        error_class, error = retry.describe(exc)
        self.log.error(
            events.INTERRUPTED, cause="database lost", error_class=error_class, error=error
        )
        message = f"Run #{run.pk} of {self.job.name}: this worker lost the database ({error})."
        return WorkResult(run.pk, State.RUNNING, False, message, int(ExitCode.DATABASE_UNAVAILABLE))

    def _slices(self, run: JobRun) -> Stop | None:
        """Slice after slice until none is left for this worker (``None``) or a stop."""
        while (stop := self.pacer.stop_requested()) is None:
            piece = self.attempts(self._next_slice)
            if piece is None:
                return None
            if (stop := self._work_on(run, piece)) is not None:
                return stop
        return stop

    def _next_slice(self) -> JobSlice | None:
        """A free slice, else the second half of the largest one left (through the run's
        retries, like a chunk: a lost connection here is waited out too)."""
        return slices.claim(self.run_id, self.owner, using=self.alias) or slices.split(
            self.run_id, self.owner, self.unbounded, chunk_size=self.sizer.size, using=self.alias
        )

    def _work_on(self, run: JobRun, piece: JobSlice) -> Stop | None:
        store = SliceStore(
            alias=self.alias,
            run_id=run.pk,
            job=self.job.name,
            owner=self.owner,
            slice_id=piece.pk,
            number=piece.number,
        )
        log = self.log.bind(slice=piece.number)
        self.log = log
        self._assemble(run, store, upto=piece.upper)
        log.info(
            events.SLICE_CLAIMED, cursor=piece.cursor, upper=piece.upper, planned=piece.remaining
        )
        try:
            stop, _ = self._chunks()
        except LeaseLost:
            raise  # not ours any more: nothing to give up
        except ForcedStop:
            stop = Stop.SIGNAL  # the chunk in flight was rolled back
        except Exception as exc:
            stop = self._stopped_by(exc)
        finally:
            self.log = log.unbind("slice")
        if stop is None:
            self.attempts(store.finish)
            log.info(events.SLICE_FINISHED)
            return None
        with contextlib.suppress(DatabaseError):
            reset_if_broken(self.connection)
            store.give_up()
        log.info(events.SLICE_RELEASED, why=stop.value)
        return stop

    def _stopped_by(self, exc: Exception) -> Stop:
        """What an error in a chunk means for this worker (it gives its slice up after)."""
        if self.stopper.requested and not isinstance(exc, BatchJobError):
            return Stop.SIGNAL
        if self.pacer.past_deadline() and retry.is_transient(exc):
            return Stop.MAX_RUNTIME
        if retry.classify(exc) is retry.ErrorKind.CONNECTION_LOST:
            raise exc  # the database is gone: nothing can be recorded; the lease goes stale
        # The job's code (or the data) failed: the run fails, as a single process would.
        # Recorded on the run for the last worker out, and asked of the others.
        error_class, error = retry.describe(exc)
        self.log.error(events.FAILED, error_class=error_class, error=error)
        reset_if_broken(self.connection)
        JobRun.objects.using(self.alias).filter(pk=self.run_id, state=State.RUNNING).update(
            requested_action=FAIL, error_class=error_class, error_message=error
        )
        self.failure = exc
        return Stop.FAILED

    def _conclude(self, run: JobRun, stop: Stop | None) -> WorkResult:
        if stop is Stop.MAX_RUNTIME and self._handing_off():
            return WorkResult(run.pk, State.RUNNING, True, "handed off")
        if stop is Stop.SIGNAL and self.hand_off_after is not None:
            # A task's worker process is being stopped (a deploy): the signal was for the
            # process, not the run, which goes on in the task's successor.
            return WorkResult(run.pk, State.RUNNING, True, "handed off: the worker is stopping")
        reset_if_broken(self.connection)
        with transaction.atomic(using=self.alias):
            # An operator's command holds the run row for a moment; a lost host's open
            # transaction could hold it for ever: then this worker's lock wait ends (a
            # retried lock timeout) and the next worker or run records the end.
            set_local_timeouts(
                self.connection, statement_seconds=None, lock_seconds=slices.LOCK_WAIT
            )
            current = JobRun.objects.using(self.alias).select_for_update().get(pk=run.pk)
            if current.state != State.RUNNING:
                return self._result(
                    current, f"Run #{run.pk} of {self.job.name} is {current.state}."
                )
            others = slices.live_owners(run.pk, using=self.alias, other_than=self.owner)
            if others or run_owner_alive(current, alias=self.alias, claiming=True):
                # Other workers go on, or one of them is recording the run's end.
                return self._result(current, f"Run #{run.pk} of {self.job.name} goes on.")
            # The last one out: this worker takes the run over to record its end, fenced as
            # a single process's end is.
            unfinished = slices.unfinished_count(run.pk, using=self.alias)
            transition(
                current,
                State.RUNNING,
                using=self.alias,
                owner_token=self.owner.token,
                owner_host=self.owner.host,
                owner_pid=self.owner.pid,
                heartbeat_at=Now(),
                # Every slice done: the run is done up to its high-water mark (a reopened
                # run, --retry-quarantined, starts there and finds nothing left).
                **({"cursor": current.high_water_mark} if unfinished == 0 else {}),
            )
        slices.roll_up(run.pk, using=self.alias)
        current.refresh_from_db()
        self._assemble(current)
        action = current.requested_action
        if action == FAIL:
            return self._failed(current)
        if action in ("pause", "cancel"):
            outcome = self.ending.stopped(Stop.PAUSE if action == "pause" else Stop.CANCEL)
        elif unfinished == 0 and stop is None:
            # The figures of the whole run since this worker began, all workers' rows in it.
            outcome = self._finish(run, self.began, current.done - run.done)
        else:
            outcome = self.ending.stopped(stop or Stop.SIGNAL)
        return WorkResult(run.pk, outcome.state, False, outcome.message, outcome.exit_code)

    def _failed(self, run: JobRun) -> WorkResult:
        """A worker failed: the run fails with its error, as recorded on the run row."""
        with contextlib.suppress(DatabaseError):
            self.ending.release(State.FAILED)
        self.hooks.failed(
            self.failure or JobFailedElsewhere(run.error_message), done=run.done, total=run.total
        )
        message = (
            f"Run #{run.pk} of {self.job.name} failed: {run.error_message} "
            f"({run.error_class}). Its checkpoint is kept; after a fix, "
            f"`runjob {self.job.name}` resumes it."
        )
        return WorkResult(run.pk, State.FAILED, False, message, int(ExitCode.FAILED))

    def _result(self, run: JobRun, message: str) -> WorkResult:
        codes = {
            State.PAUSED: ExitCode.PAUSED,
            State.CANCELLED: ExitCode.CANCELLED,
            State.FAILED: ExitCode.FAILED,
            State.QUARANTINED: ExitCode.QUARANTINED,
        }
        code = int(codes.get(State(run.state), 0))
        return WorkResult(run.pk, str(run.state), False, message, code)

    def _emit_progress(self, now: float) -> None:
        """A worker's share of the progress: the run row gets the slices' sums (the process
        that watches the run reports it)."""
        with contextlib.suppress(DatabaseError):
            slices.roll_up(self.run_id, using=self.alias, with_rate=self.rolls_up)


class JobFailedElsewhere(Exception):
    """The run failed in another worker: its error, as recorded on the run."""


def work(
    job_name: str,
    run_id: int,
    *,
    argv: Sequence[str] = (),
    max_seconds: float | None = None,
    stopper: Stopper | None = None,
) -> WorkResult:
    """Work on sliced run ``run_id`` of ``job_name`` as one worker, in this process, for at
    most ``max_seconds`` (``None``: until no slice is left; a task's turn otherwise).
    ``argv``: runjob's options for the workers (``sharing.worker_args``). The job is made
    from the run's stored parameters."""
    from batchjobs.sharing import options_from_argv  # noqa: PLC0415 - it imports this module

    job_class = registry.get(job_name)
    run = JobRun.objects.filter(pk=run_id).first()
    if run is None:
        raise RunNotResumable(f"{job_name} has no run #{run_id}.")
    job = job_class.resuming(run.parameters, run.pk)
    options = options_from_argv(job_name, argv)
    return SliceWorker(
        job, options, run_id=run_id, hand_off_after=max_seconds, stopper=stopper
    ).work()


def check_can_share(job: ResumableJob, vendor: str, workers: int) -> None:
    """Refuse what many workers cannot do, before anything is written."""
    if vendor != "postgresql":
        raise InvalidOption(
            f"--workers {workers}: {vendor} has one writer at a time, so workers would only "
            "wait for each other; run without --workers (or on PostgreSQL)."
        )
    if job.has_effects():
        raise InvalidOption(
            f"{job.name} records outside effects, which many workers do not deliver yet; "
            "run it without --workers."
        )
    sensitive = [name for name, p in job.parameters.items() if p.sensitive]
    if sensitive:
        raise InvalidOption(
            f"{job.name} has a sensitive parameter (--{sensitive[0].replace('_', '-')}), which "
            "is not stored with the run, so other workers could not run it; run it without "
            "--workers."
        )
