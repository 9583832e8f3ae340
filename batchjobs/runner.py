"""One run's life: claim the lease, loop over chunks, verify, finish.

Each chunk is ONE transaction that (1) locks the run row and reads the authoritative
checkpoint, (2) plans the next keys after it, (3) lets the job write, and (4) moves the
checkpoint, fenced on the lease. Either all of it commits or none of it does, so a crash
redoes at most the chunk in flight, and a retry after an ambiguous commit (the connection
died while COMMIT was on the wire) re-reads the checkpoint and does not redo the chunk.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any, TypeVar

from django.db import DatabaseError, connections, router, transaction
from django.db.models import F, QuerySet
from django.db.models.functions import Now
from django.utils import timezone
from tenacity import RetryCallState

from batchjobs import conf, events, health, retry
from batchjobs.claim import Claim, os_user
from batchjobs.database import set_local_timeouts, table_bytes, vacuum_analyze
from batchjobs.exceptions import (
    BatchJobError,
    DatabaseUnavailable,
    InvalidOption,
    JobFailed,
    LeaseLost,
)
from batchjobs.exit_codes import ExitCode
from batchjobs.job import ResumableJob, RunInfo
from batchjobs.keyset import Chunk, Keyset, check_queryset
from batchjobs.lease import Owner
from batchjobs.models import JobRun, QuarantinedRow, State
from batchjobs.progress import ProgressEstimator
from batchjobs.quarantine import QuarantineSteps
from batchjobs.sizing import ChunkSizer
from batchjobs.stopping import ForcedStop, Stopper
from batchjobs.verification import VerificationStep

T = TypeVar("T")


@dataclass(frozen=True)
class RunOptions:
    """How to run; every field has a command-line option of the same name."""

    batch_size: int | None = None
    target_chunk_seconds: float | None = None
    sleep: float = 0.0
    restart: bool = False
    resume: bool = False
    retry_quarantined: bool = False
    max_runtime: float | None = None
    statement_timeout: float | None = None
    lock_timeout: float | None = None
    max_quarantined: int | None = None
    vacuum: bool = False
    sql_side: bool = False
    reason: str = ""

    def __post_init__(self) -> None:
        positive = {
            "batch_size": self.batch_size,
            "target_chunk_seconds": self.target_chunk_seconds,
            "max_runtime": self.max_runtime,
            "statement_timeout": self.statement_timeout,
            "lock_timeout": self.lock_timeout,
        }
        for name, value in positive.items():
            if value is not None and value <= 0:
                raise InvalidOption(f"--{name.replace('_', '-')} must be greater than zero.")
        if self.sleep < 0:
            raise InvalidOption("--sleep must be zero or more.")
        if self.max_quarantined is not None and self.max_quarantined < 0:
            raise InvalidOption("--max-quarantined must be zero or more.")
        if self.restart and (self.resume or self.retry_quarantined):
            raise InvalidOption("--restart cannot be combined with --resume/--retry-quarantined.")


@dataclass(frozen=True)
class Outcome:
    run_id: int
    state: str
    exit_code: int
    message: str


@dataclass(frozen=True)
class _ChunkResult:
    rows: int
    seconds: float
    exhausted: bool = False


class Runner(QuarantineSteps, VerificationStep):
    def __init__(
        self,
        job: ResumableJob,
        options: RunOptions | None = None,
        *,
        stopper: Stopper | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.job = job
        self.options = options or RunOptions()
        self.settings = conf.get()
        self.stopper = stopper or Stopper()
        self.clock = clock
        self.owner = Owner.current()
        self.log = events.get_logger(job=job.name)
        self.queryset: QuerySet[Any] = job.get_queryset()
        check_queryset(self.queryset)
        self.alias = router.db_for_write(self.queryset.model)
        self.connection = connections[self.alias]
        self.health_checks = health.load(self.settings.HEALTH_CHECKS)
        self.sql_values = job.sql_values(self.connection) if self.options.sql_side else None
        if self.options.sql_side and not self.sql_values:
            raise InvalidOption(
                f"{job.name} has no SQL-side values on {self.connection.vendor}; "
                "run it without --sql-side."
            )
        self.sizer = ChunkSizer(
            size=self.options.batch_size or self.settings.INITIAL_CHUNK_SIZE,
            target_seconds=self.options.target_chunk_seconds or self.settings.TARGET_CHUNK_SECONDS,
            minimum=min(self.settings.MIN_CHUNK_SIZE, self.options.batch_size or 1 << 62),
            maximum=max(
                self.settings.MAX_SQL_SIDE_CHUNK_SIZE
                if self.options.sql_side
                else self.settings.MAX_CHUNK_SIZE,
                self.options.batch_size or 0,
            ),
            fixed=self.options.batch_size is not None,
        )
        self.sleep_seconds = self.options.sleep
        self._retries_to_record = 0
        self._retry_notes: list[dict[str, Any]] = []
        self._requested_action = ""
        self._tuning: dict[str, Any] = {}
        self._applied_tuning: dict[str, Any] = {}
        self._last_health_check = 0.0
        self._in_chunk = False
        self._released = False

    # -- the run as a whole -------------------------------------------------------------

    def run(self) -> Outcome:
        with self.stopper.installed(on_force=self._cancel_statement):
            run = self._claim()
            self.run_id = run.pk
            self.log = self.log.bind(run_id=run.pk)
            try:
                return self._drive(run)
            except ForcedStop:
                return self._interrupted("a second stop signal")
            except LeaseLost:
                self.log.error(events.FAILED, error_class="LeaseLost", error=str(LeaseLost()))
                raise
            except Exception as exc:
                if self.stopper.requested and not isinstance(exc, BatchJobError):
                    # Whatever the stop cut short (a cancelled statement, a retry given up)
                    # is rolled back; the run is interrupted, not failed.
                    return self._interrupted(self.stopper.signal_name or "a stop request")
                if retry.classify(exc) is retry.ErrorKind.CONNECTION_LOST:
                    raise self._database_lost(exc) from None
                raise self._failed(exc) from None

    def _claim(self) -> JobRun:
        try:
            return Claim(
                job_name=self.job.name,
                queryset=self.queryset,
                key=self.job.key,
                options=self.options,
                owner=self.owner,
                alias=self.alias,
            ).run()
        except DatabaseError as exc:
            # Only a lost connection is "unavailable" (69, retry later); a missing grant,
            # a missing table or a busy SQLite file each say so, with their own exit code.
            raise retry.explain(
                exc,
                doing=f"Could not claim a run of {self.job.name}",
                after="Nothing was changed.",
            ) from None

    def _drive(self, run: JobRun) -> Outcome:
        unbounded = Keyset(self.queryset, self.job.key, None)
        self.keyset = replace(unbounded, upto=unbounded.decode(run.high_water_mark))
        self._done_at_start = run.done
        self.run_info = RunInfo(
            run_id=run.pk, started_at=run.started_at, high_water_mark=self.keyset.upto
        )
        started = self.clock()
        self.progress = ProgressEstimator(total=run.total, done=run.done, started_at=started)
        self.log.info(
            events.STARTED,
            resumed=run.chunks > 0 or run.done > 0,
            done=run.done,
            total=run.total,
            high_water_mark=run.high_water_mark,
            cursor=run.cursor,
            chunk_size=self.sizer.size,
            options=run.options,
            started_by=os_user(),
            reason=self.options.reason,
            run_started_by=run.started_by,
            run_reason=run.reason,
        )
        self._retry_quarantined_rows()
        last_emit, emitted = started, False
        while True:
            outcome = self._between_chunks(started)
            if outcome is not None:
                return outcome
            result = self._next_chunk()
            if result.exhausted:
                break
            now = self.clock()
            self.progress.advance(result.rows, now=now)
            self.sizer.observe(rows=result.rows, seconds=result.seconds)
            emitted = now - last_emit >= self.settings.PROGRESS_INTERVAL_SECONDS
            if emitted:
                self._emit_progress(now)
                last_emit = now
        if not emitted:
            self._emit_progress(self.clock())
        return self._finish(started)

    def _emit_progress(self, now: float) -> None:
        snap = self.progress.snapshot(now=now)
        self.log.info(events.PROGRESS, **asdict(snap), chunk_size=self.sizer.size)

    def _release(self, state: State, **fields: Any) -> None:
        """Leave the run in ``state`` and give the lease up (in its own transaction)."""
        if self._released:
            return
        self._reset_connection_if_broken()
        run = JobRun.objects.using(self.alias).get(pk=self.run_id)
        if run.owner_token != self.owner.token:
            raise LeaseLost()
        run.transition(
            state,
            using=self.alias,
            owner_token="",
            heartbeat_at=Now(),
            retries=F("retries") + self._retries_to_record,
            **fields,
        )
        self._retries_to_record = 0
        self._released = True

    # -- between chunks: stop, pause, cancel, tuning, throttling ------------------------

    def _between_chunks(self, started: float) -> Outcome | None:
        # With DEBUG=True Django keeps up to 9,000 queries per connection; keep none of ours.
        self.connection.queries_log.clear()
        # SQLite: leave the write lock free a moment, so a waiting writer (runjob --pause,
        # the application) gets its turn; its busy handler polls only every 100 ms.
        if self.connection.vendor == "sqlite":
            time.sleep(0.05)
        outcome = self._stop_if_asked(started)
        if outcome is not None:
            return outcome
        self._apply_tuning()
        self._throttle()
        if self.sleep_seconds > 0:
            self._wait(self.sleep_seconds)
        # A wait may have lasted: look again at signals, requests and tuning before a chunk.
        outcome = self._stop_if_asked(started)
        self._apply_tuning()
        return outcome

    def _stop_if_asked(self, started: float) -> Outcome | None:
        if self.stopper.requested:
            return self._interrupted(self.stopper.signal_name or "a stop request")
        if self._requested_action == "pause":
            return self._parked(State.PAUSED, events.PAUSED, ExitCode.PAUSED)
        if self._requested_action == "cancel":
            return self._parked(State.CANCELLED, events.CANCELLED, ExitCode.CANCELLED)
        max_runtime = self.options.max_runtime
        if max_runtime is not None and self.clock() - started >= max_runtime:
            return self._interrupted(
                f"--max-runtime {max_runtime:g}s reached", exit_code=ExitCode.MAX_RUNTIME
            )
        return None

    def _apply_tuning(self) -> None:
        if self._tuning == self._applied_tuning:
            return
        tuning = self._tuning
        if "sleep" in tuning:
            self.sleep_seconds = float(tuning["sleep"])
        self.sizer.retune(
            size=tuning.get("batch_size") or None,
            target_seconds=tuning.get("target_chunk_seconds"),
        )
        self._applied_tuning = dict(tuning)
        self.log.info(
            events.TUNED, sleep=self.sleep_seconds, chunk_size=self.sizer.size, tuning=tuning
        )

    def _throttle(self) -> None:
        now = self.clock()
        if not self.health_checks or now - self._last_health_check < 1.0:
            return
        self._last_health_check = now
        while not self.stopper.requested and not self._requested_action:
            # Through the retries: a server restart first noticed here is waited out too.
            verdict = self._with_retries(
                lambda: next(
                    (v for check in self.health_checks if (v := check(self.connection))), None
                )
            )
            if verdict is None:
                return
            self.log.warning(
                events.THROTTLED, reason=verdict.reason, wait_seconds=verdict.wait_seconds
            )
            self._wait(verdict.wait_seconds)

    def _wait(self, seconds: float) -> None:
        """Sleep in one-second slices: keep the heartbeat fresh, and wake early on a stop
        signal, a pause or cancel request, or new tuning (``--tune --sleep 0`` ends a long
        sleep at once)."""
        end = self.clock() + seconds
        last_beat = self.clock()
        tuning = self._tuning
        while not self.stopper.requested:
            left = end - self.clock()
            if left <= 0:
                return
            self.stopper.sleep(min(left, 1.0))
            with contextlib.suppress(DatabaseError):  # a lost database: the retries decide
                self._poll_control()
            if self._requested_action or self._tuning != tuning:
                return
            if self.clock() - last_beat >= self.settings.HEARTBEAT_SECONDS:
                self._heartbeat()
                last_beat = self.clock()

    def _heartbeat(self) -> None:
        try:
            updated = (
                JobRun.objects.using(self.alias)
                .filter(pk=self.run_id, owner_token=self.owner.token)
                .update(heartbeat_at=Now())
            )
        except DatabaseError:
            self._reset_connection_if_broken()
            return  # the next chunk's retries deal with a lost database
        if not updated:
            raise LeaseLost()

    def _poll_control(self) -> None:
        try:
            row = (
                JobRun.objects.using(self.alias)
                .filter(pk=self.run_id)
                .values("requested_action", "tuning")
                .first()
            )
        except DatabaseError:
            self._reset_connection_if_broken()
            raise
        if row:
            self._requested_action, self._tuning = row["requested_action"], row["tuning"]

    def _parked(self, state: State, event: str, code: ExitCode) -> Outcome:
        finished = {"finished_at": timezone.now()} if state == State.CANCELLED else {}
        with contextlib.suppress(DatabaseError):
            self._release(state, requested_action="", **finished)
        how = (
            f"continue with `runjob {self.job.name} --resume`"
            if state == State.PAUSED
            else "the run will not be continued; its record stays for inspection"
        )
        message = f"Run #{self.run_id} of {self.job.name} is {state}: {how}."
        self.log.warning(event, done=self.progress.done, total=self.progress.total, message=message)
        return Outcome(self.run_id, state, int(code), message)

    def _interrupted(self, why: str, *, exit_code: int | None = None) -> Outcome:
        # A database that is down cannot record it; the lease then goes stale and the next
        # run takes the run over all the same.
        with contextlib.suppress(DatabaseError):
            self._release(State.INTERRUPTED)
        message = (
            f"Run #{self.run_id} of {self.job.name} interrupted by {why} after "
            f"{self.progress.done:,} of {self.progress.total or 0:,} rows; every committed "
            f"chunk is kept. Resume with: python manage.py runjob {self.job.name}"
        )
        self.log.warning(
            events.INTERRUPTED,
            done=self.progress.done,
            total=self.progress.total,
            signal=self.stopper.signal_name,
            cause=why,
            resume_command=f"python manage.py runjob {self.job.name}",
        )
        code = self.stopper.exit_code if exit_code is None else int(exit_code)
        return Outcome(self.run_id, State.INTERRUPTED, code, message)

    def _database_lost(self, exc: BaseException) -> DatabaseUnavailable:
        """The database stayed away through every retry: nothing is wrong with the run."""
        error_class, error = retry.describe(exc)
        with contextlib.suppress(Exception):  # it is most likely still gone
            self._release(State.INTERRUPTED, error_class=error_class, error_message=error)
        self.log.error(
            events.INTERRUPTED,
            done=self.progress.done if hasattr(self, "progress") else None,
            cause="database lost",
            error_class=error_class,
            error=error,
            resume_command=f"python manage.py runjob {self.job.name}",
        )
        return DatabaseUnavailable(
            f"Run #{self.run_id} of {self.job.name} lost its database and gave up after "
            f"{self.settings.MAX_ATTEMPTS} attempts ({error}). Every committed chunk is kept: "
            f"run `runjob {self.job.name}` again when the database is back."
        )

    def _failed(self, exc: BaseException) -> JobFailed:
        error_class, error = retry.describe(exc)
        # The database may be gone; then the lease goes stale and the next run takes over.
        with contextlib.suppress(Exception):
            self._release(State.FAILED, error_class=error_class, error_message=error)
        self.log.error(
            events.FAILED,
            error_class=error_class,
            error=error,
            done=getattr(getattr(self, "progress", None), "done", None),
        )
        return JobFailed(
            f"Run #{self.run_id} of {self.job.name} failed: {error} ({error_class}). "
            f"Its checkpoint is kept; after a fix, `runjob {self.job.name}` resumes it."
        )

    # -- one chunk ----------------------------------------------------------------------

    def _next_chunk(self) -> _ChunkResult:
        try:
            return self._with_retries(lambda: self._chunk(size=self.sizer.size))
        except Exception as exc:
            if not self._row_error(exc):
                raise
            # A row-level error: find the bad rows instead of stopping a million good ones.
            keys = self._with_retries(self._keys_after_checkpoint)
            started = self.clock()
            rows = self._settle(keys, first_error=exc)
            return _ChunkResult(rows=rows, seconds=self.clock() - started)

    def _with_retries(self, attempt_fn: Callable[[], T]) -> T:
        policy = retry.policy(
            max_attempts=self.settings.MAX_ATTEMPTS,
            max_wait=self.settings.MAX_RETRY_WAIT_SECONDS,
            sleep=self._wait,
            before_sleep=self._on_retry,
            stop_event=self.stopper.event,
        )
        return policy(attempt_fn)

    def _on_retry(self, state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        assert exc is not None
        kind = retry.classify(exc)
        if kind is retry.ErrorKind.CONNECTION_LOST:
            self._reset_connection()
        if kind is retry.ErrorKind.STATEMENT_TIMEOUT:
            self.sizer.shrink()
        self._retries_to_record += 1
        error_class, error = retry.describe(exc)
        self._retry_notes.append(
            {
                "at": timezone.now().isoformat(),
                "attempt": state.attempt_number,
                "kind": kind.value,
                "error": error,
                "chunk_size": self.sizer.size,
            }
        )
        self.log.warning(
            events.RETRY,
            attempt=state.attempt_number,
            error_kind=kind.value,
            error_class=error_class,
            error=error,
            wait_seconds=round(state.next_action.sleep, 3) if state.next_action else None,
            chunk_size=self.sizer.size,
        )

    def _cancel_statement(self) -> None:
        """From the signal watcher thread: cancel the statement in flight (PQcancel is
        thread-safe), so that a second stop signal does not wait for it to end."""
        raw = self.connection.connection
        if raw is not None and hasattr(raw, "cancel"):
            with contextlib.suppress(Exception):
                raw.cancel()

    def _reset_connection(self) -> None:
        with contextlib.suppress(DatabaseError):
            self.connection.close()
        self.connection.connection = None

    def _reset_connection_if_broken(self) -> None:
        if self.connection.connection is not None and not self.connection.is_usable():
            self._reset_connection()

    def _keys_after_checkpoint(self) -> list[Any]:
        run = JobRun.objects.using(self.alias).filter(pk=self.run_id).values("cursor").first()
        cursor = self.keyset.decode(run["cursor"]) if run else None
        return self.keyset.next_keys(after=cursor, limit=self.sizer.size)

    def _lock_run(self) -> dict[str, Any]:
        row = (
            JobRun.objects.using(self.alias)
            .select_for_update()
            .filter(pk=self.run_id, owner_token=self.owner.token)
            .values("cursor", "requested_action", "tuning")
            .first()
        )
        if row is None:
            raise LeaseLost()
        self._requested_action, self._tuning = row["requested_action"], row["tuning"]
        return row

    @contextlib.contextmanager
    def _locked_transaction(self) -> Iterator[dict[str, Any]]:
        """A transaction with the per-chunk timeouts that holds the run row (fenced on the
        lease): every write of the job happens inside one."""
        with transaction.atomic(using=self.alias):
            self._set_timeouts()
            yield self._lock_run()

    def _set_timeouts(self) -> None:
        set_local_timeouts(
            self.connection,
            statement_seconds=self.options.statement_timeout
            or self.settings.STATEMENT_TIMEOUT_SECONDS,
            lock_seconds=self.options.lock_timeout or self.settings.LOCK_TIMEOUT_SECONDS,
        )

    def _chunk(self, *, size: int | None = None, keys: Sequence[Any] | None = None) -> _ChunkResult:
        """One transaction: lock the run, plan, process, move the checkpoint."""
        started = self.clock()
        self._in_chunk = True
        try:
            return self._chunk_transaction(started, size=size, keys=keys)
        finally:
            self._in_chunk = False

    def _chunk_transaction(
        self, started: float, *, size: int | None, keys: Sequence[Any] | None
    ) -> _ChunkResult:
        # Once the work is done, signals wait out the COMMIT (the atomic block's exit).
        with self.stopper.released_on_exit(), self._locked_transaction() as row:
            cursor = self.keyset.decode(row["cursor"])
            if keys is None and self.sql_values is not None:
                # SQL-side: no values travel, so neither do keys; only the range's end.
                planned = self.keyset.next_range(after=cursor, limit=size or self.sizer.size)
                if planned is None:
                    return _ChunkResult(rows=0, seconds=0.0, exhausted=True)
                last, rows = planned
                self.keyset.between(cursor, last).update(**self.sql_values)
                self._advance(last, rows)
                self.stopper.hold()
                return _ChunkResult(rows=rows, seconds=self.clock() - started)
            if keys is None:
                keys = self.keyset.next_keys(after=cursor, limit=size or self.sizer.size)
                if not keys:
                    return _ChunkResult(rows=0, seconds=0.0, exhausted=True)
            elif cursor is not None and cursor in keys:
                # Part of this list committed already (an ambiguous commit): skip it.
                keys = keys[list(keys).index(cursor) + 1 :]
                if not keys:
                    return _ChunkResult(rows=0, seconds=0.0)
            self._process(Chunk(keys=keys, keyset=self.keyset))
            self._advance(keys[-1], len(keys))
            self.stopper.hold()
        return _ChunkResult(rows=len(keys), seconds=self.clock() - started)

    def _process(self, chunk: Chunk) -> None:
        if self.sql_values is not None:
            chunk.queryset.update(**self.sql_values)
        else:
            self.job.process(chunk)

    def _advance(self, last_key: Any, rows: int, **extra: Any) -> None:
        """Move the checkpoint, inside the chunk's transaction, fenced on the lease."""
        snap = self.progress.snapshot(now=self.clock())
        if self._retry_notes:
            extra["stats"] = self._stats_with_retry_notes()
        updated = (
            JobRun.objects.using(self.alias)
            .filter(pk=self.run_id, owner_token=self.owner.token)
            .update(
                cursor=self.keyset.encode(last_key),
                done=F("done") + rows,
                chunks=F("chunks") + 1,
                retries=F("retries") + self._retries_to_record,
                heartbeat_at=Now(),
                rate=snap.rate,
                eta_seconds=snap.eta_seconds,
                **extra,
            )
        )
        if not updated:
            raise LeaseLost()
        self._retries_to_record = 0
        self._retry_notes = []

    def _stats_with_retry_notes(self) -> dict[str, Any]:
        """The audit trail keeps the last 100 retries: when, where, and why."""
        stats = dict(
            JobRun.objects.using(self.alias).values_list("stats", flat=True).get(pk=self.run_id)
        )
        stats["retry_log"] = [*stats.get("retry_log", []), *self._retry_notes][-100:]
        return stats

    # -- the end: measure, finish ------------------------------------------------------

    def _vacuum(self, stats: dict[str, Any]) -> str:
        """VACUUM ANALYZE after the lease is given up, so a long one cannot make the run look
        stalled. The run has succeeded already: a failed or stopped VACUUM is reported, not
        turned into a failure."""
        started = self.clock()
        try:
            vacuum_analyze(self.connection, self.queryset.model)
        except (Exception, ForcedStop) as exc:
            error_class, error = retry.describe(exc)
            self.log.warning(events.VACUUM_FAILED, error_class=error_class, error=error)
            return f" VACUUM did not complete ({error}); run VACUUM ANALYZE by hand."
        stats["vacuum_seconds"] = round(self.clock() - started, 3)
        stats["table_bytes_after_vacuum"] = table_bytes(self.connection, self.queryset.model)
        JobRun.objects.using(self.alias).filter(pk=self.run_id).update(stats=stats)
        return ""

    def _finish(self, started: float) -> Outcome:
        verification = self._verify()
        if verification.get("remaining"):
            raise JobFailed(
                f"verification found {verification['remaining']} rows still pending after a "
                "re-sweep"
            )
        run = JobRun.objects.using(self.alias).get(pk=self.run_id)
        # The recorded count is the truth (an ambiguous commit may have been skipped).
        self.progress.done = run.done
        stats = dict(run.stats)
        stats["table_bytes_after"] = table_bytes(self.connection, self.queryset.model)
        unresolved = QuarantinedRow.objects.using(self.alias).filter(
            run_id=self.run_id, resolved_at__isnull=True
        )
        quarantined = unresolved.count()
        state = State.QUARANTINED if quarantined else State.SUCCEEDED
        self._release(
            state,
            finished_at=timezone.now(),
            verification=verification,
            stats=stats,
            error_class="",
            error_message="",
        )
        elapsed = self.clock() - started
        vacuum_note = self._vacuum(stats) if self.options.vacuum else ""
        self.log.info(
            events.FINISHED,
            state=state.value,
            done=self.progress.done,
            total=self.progress.total,
            quarantined=quarantined,
            duration_seconds=round(elapsed, 3),
            rate=round((self.progress.done - self._done_at_start) / elapsed, 1)
            if elapsed
            else None,
            verification=verification,
            table_bytes_before=stats.get("table_bytes_before"),
            table_bytes_after=stats.get("table_bytes_after"),
            table_bytes_after_vacuum=stats.get("table_bytes_after_vacuum"),
            vacuum_seconds=stats.get("vacuum_seconds"),
        )
        if quarantined:
            keys = list(unresolved.values_list("key", flat=True)[:20])
            message = (
                f"Run #{self.run_id} of {self.job.name} finished with {quarantined} quarantined "
                f"rows (keys {keys}); fix them, then `runjob {self.job.name} --retry-quarantined`."
            )
            return Outcome(self.run_id, state, int(ExitCode.QUARANTINED), message)
        message = (
            f"Run #{self.run_id} of {self.job.name} succeeded: {self.progress.done:,} rows."
            + vacuum_note
        )
        return Outcome(self.run_id, state, int(ExitCode.SUCCEEDED), message)
