"""One worker's life on one run: claim it, repeat the chunk unit until the rows run out or
something says stop, verify, and turn what happened into an outcome.

The runner writes nothing itself. Every write of the run goes through ``RunStore`` (fenced
on the lease), every chunk through ``ChunkUnit`` (one transaction with the checkpoint),
every wait through ``Pacer``, every outside effect through ``Courier`` (after its chunk's
COMMIT; the effects owed from before first); a failing chunk goes to ``Quarantine``, the
last check to ``Verifier``, and the end to ``Ending``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, replace
from typing import Any

from django.db import connections, router
from django.db.models import Model, QuerySet

from batchjobs import conf, events, health, retry
from batchjobs.attempts import Attempts
from batchjobs.claim import Claim, os_user
from batchjobs.database import cancel_statement
from batchjobs.delivery import Courier
from batchjobs.ending import Ending, Outcome
from batchjobs.exceptions import (
    BatchJobError,
    InvalidOption,
    JobFailed,
    LeaseLost,
)
from batchjobs.hooks import Hooks, run_info
from batchjobs.job import ResumableJob
from batchjobs.keyset import Keyset, check_queryset
from batchjobs.lease import Owner
from batchjobs.models import JobRun
from batchjobs.options import RunOptions
from batchjobs.outbox import Outbox
from batchjobs.pacing import Pacer, Stop
from batchjobs.parameters import masked
from batchjobs.progress import ProgressEstimator, Snapshot
from batchjobs.quarantine import Quarantine
from batchjobs.stopping import ForcedStop, Stopper
from batchjobs.store import RunStore
from batchjobs.unit import ChunkResult, ChunkUnit
from batchjobs.verification import Verifier

__all__ = ["Outcome", "RunOptions", "Runner"]


class Runner:
    def __init__(
        self,
        job: ResumableJob,
        options: RunOptions | None = None,
        *,
        stopper: Stopper | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.options = options = options or RunOptions()
        self.settings = settings = conf.get()
        self.stopper = stopper or Stopper()
        self.clock = clock
        self.owner = Owner.current()
        self.log = events.get_logger(job=job.name)
        self._use(job)
        self.sizer = options.chunk_sizer(settings)
        self.health_checks = health.load(settings.HEALTH_CHECKS)  # a bad path fails here too

    def _use(self, job: ResumableJob) -> None:
        """Work on ``job``'s rows: at first the job given, and after the claim the same job
        with the parameters the run stored, when they differ (a resume)."""
        self.job = job
        self.queryset: QuerySet[Model] = job.get_queryset()
        check_queryset(self.queryset)
        self.alias = router.db_for_write(self.queryset.model)
        self.connection = connections[self.alias]
        sql_side = self.options.sql_side
        self.sql_values = job.sql_values(self.connection) if sql_side else None
        if sql_side and not self.sql_values:
            raise InvalidOption(
                f"{job.name} has no SQL-side values on {self.connection.vendor}; "
                "run it without --sql-side."
            )
        if sql_side and job.has_effects():
            raise InvalidOption(
                f"{job.name} records outside effects in process(), which --sql-side does not "
                "call; run it without --sql-side."
            )
        # The key is checked before anything is claimed: a job whose key cannot be used
        # must not take a run over and then leave it owned by a process that has gone.
        self.unbounded = Keyset(self.queryset, job.key, None)

    def run(self) -> Outcome:
        with (
            retry.hiding(self.job.sensitive_values()),
            self.stopper.installed(on_force=lambda: cancel_statement(self.connection)),
        ):
            run = Claim(
                job_name=self.job.name,
                queryset=self.queryset,
                key=self.job.key,
                options=self.options,
                owner=self.owner,
                alias=self.alias,
                job=self.job,
            ).run()
            self.log = self.log.bind(run_id=run.pk)
            # The claim checked that the run's parameters can be used (this cannot raise).
            job = self.job.for_run(run.parameters, run.pk)
            if job is not self.job:
                self._use(job)
            self._assemble(run)
            try:
                return self._drive(run)
            except ForcedStop:
                return self.ending.interrupted("a second stop signal")
            except LeaseLost as exc:
                self.ending.lease_lost(exc)
                raise
            except Exception as exc:
                if self.stopper.requested and not isinstance(exc, BatchJobError):
                    # Whatever the stop cut short (a cancelled statement, a retry given up)
                    # is rolled back; the run is interrupted, not failed.
                    return self.ending.interrupted(self.stopper.signal_name or "a stop request")
                if self.pacer.past_deadline() and retry.is_transient(exc):
                    # Retries end at --max-runtime too: the window is over, not the run.
                    return self.ending.stopped(Stop.MAX_RUNTIME)
                if retry.classify(exc) is retry.ErrorKind.CONNECTION_LOST:
                    raise self.ending.database_lost(exc) from None
                raise self.ending.failed(exc) from None

    def _time_left(self) -> float | None:
        """Seconds this process may still work (``None``: no limit)."""
        return self.options.max_runtime

    def _assemble(self, run: JobRun, store: RunStore | None = None, *, upto: Any = None) -> None:
        """The collaborators of this run, each given just what it needs: by default over
        the whole run, or over one slice (its ``store``, and ``upto`` its last key)."""
        settings, options, clock = self.settings, self.options, self.clock
        last = run.high_water_mark if store is None else upto
        self.keyset = replace(self.unbounded, upto=self.unbounded.decode(last))
        self.info = run_info(
            run, job=self.job.name, high_water_mark=self.unbounded.decode(run.high_water_mark)
        )
        self.hooks = Hooks(job=self.job, run=self.info, log=self.log)
        self.store = store or RunStore(
            alias=self.alias, run_id=run.pk, job=self.job.name, owner=self.owner
        )
        self.progress = ProgressEstimator(
            total=run.total, done=run.done, started_at=clock(), set_aside=run.quarantined
        )
        self.pacer = Pacer(
            store=self.store,
            connection=self.connection,
            stopper=self.stopper,
            sizer=self.sizer,
            settings=settings,
            health_checks=self.health_checks,
            sleep_seconds=options.sleep,
            max_runtime=self._time_left(),
            clock=clock,
            log=self.log,
            on_wait=self.progress.waited,
        )
        self.attempts = Attempts(
            settings=settings,
            stopper=self.stopper,
            store=self.store,
            connection=self.connection,
            sizer=self.sizer,
            wait=self.pacer.wait,
            out_of_time=self.pacer.past_deadline,
            log=self.log,
        )
        self.pacer.with_retries = self.attempts
        outbox = None
        self.courier: Courier | None = None
        if self.job.has_effects():
            outbox = Outbox(alias=self.alias, run_id=run.pk)
            self.courier = Courier(
                job=self.job,
                outbox=outbox,
                pacer=self.pacer,
                with_retries=self.attempts,
                max_wait=settings.MAX_RETRY_WAIT_SECONDS,
                log=self.log,
            )
        self.unit = ChunkUnit(
            job=self.job,
            keyset=self.keyset,
            connection=self.connection,
            stopper=self.stopper,
            timeouts=options.timeouts(settings),
            clock=clock,
            store=self.store,
            sql_values=self.sql_values,
            on_controls=self.pacer.observe,
            rate_and_eta=self._rate_and_eta,
            outbox=outbox,
        )
        self.quarantine = Quarantine(
            unit=self.unit,
            store=self.store,
            attempts=self.attempts,
            progress=self.progress,
            stopper=self.stopper,
            limit=options.quarantine_limit(settings),
            log=self.log,
        )
        self.ending = Ending(
            job=self.job.name,
            store=self.store,
            connection=self.connection,
            model=self.queryset.model,
            progress=self.progress,
            stopper=self.stopper,
            settings=settings,
            clock=clock,
            vacuum_lock=options.vacuum_lock(settings),
            max_runtime=options.max_runtime,
            log=self.log,
            hooks=self.hooks,
        )

    def _drive(self, run: JobRun) -> Outcome:
        started = self.clock()
        self.log.info(
            events.STARTED,
            resumed=self.info.resumed,
            done=run.done,
            total=run.total,
            high_water_mark=run.high_water_mark,
            cursor=run.cursor,
            chunk_size=self.sizer.size,
            options=run.options,
            parameters=masked(run.parameters),
            started_by=os_user(),
            reason=self.options.reason,
            run_started_by=run.started_by,
            run_reason=run.reason,
        )
        self.hooks.started()
        # Effects owed by an earlier session (a crash, a stop) go out before any new chunk.
        if (stop := self._deliver(announce=True)) is not None:
            return self.ending.stopped(stop)
        self.quarantine.retry_owed()
        stop, changed = self._chunks()
        if stop is not None:
            return self.ending.stopped(stop)
        return self._finish(run, started, changed)

    def _chunks(self) -> tuple[Stop | None, int]:
        """Chunk after chunk until the rows run out (``None``) or a reason to stop; with
        the rows the job said it changed."""
        last_emit, emitted, changed = self.clock(), False, 0
        while (stop := self.pacer.between_chunks()) is None:
            result = self._next_chunk()
            if result.exhausted:
                break
            self.pacer.beat()
            now = self.clock()
            self.progress.advance(result.rows, now=now)
            self.sizer.observe(rows=result.rows, seconds=result.seconds)
            changed += result.rows if result.changed is None else result.changed
            if emitted := now - last_emit >= self.settings.PROGRESS_INTERVAL_SECONDS:
                self._emit_progress(now)
                last_emit = now
            if (stop := self._deliver()) is not None:
                break
        if stop is None and not emitted:
            self._emit_progress(self.clock())
        return stop, changed

    def _deliver(self, *, announce: bool = False) -> Stop | None:
        """The effects owed, after the COMMIT of the chunks that recorded them."""
        if self.courier is None:
            return None
        return self.courier.deliver_owed(announce=announce)

    def _next_chunk(self) -> ChunkResult:
        try:
            return self.attempts(lambda: self.unit.next(size=self.sizer.size))
        except Exception as exc:
            if not self.quarantine.is_row_error(exc):
                raise
            # A row-level error: find the bad rows instead of stopping a million good ones.
            keys = self.attempts(self._keys_after_checkpoint)
            started = self.clock()
            rows = self.quarantine.settle(keys, first_error=exc)
            return ChunkResult(rows=rows, seconds=self.clock() - started)

    def _keys_after_checkpoint(self) -> list[Any]:
        keyset = self.unit.keyset  # a slice's end as its last chunk read it
        return keyset.next_keys(after=keyset.decode(self.store.cursor()), limit=self.sizer.size)

    def _snapshot(self, now: float) -> Snapshot:
        return self.progress.snapshot(
            now=now, sleep_per_chunk=self.pacer.sleep_seconds, chunk_size=self.sizer.size
        )

    def _rate_and_eta(self) -> tuple[float | None, float | None]:
        snap = self._snapshot(self.clock())
        return snap.rate, snap.eta_seconds

    def _emit_progress(self, now: float) -> None:
        snap = self._snapshot(now)
        self.log.info(
            events.PROGRESS,
            **asdict(snap),
            quarantined=self.progress.set_aside,
            chunk_size=self.sizer.size,
        )

    def _finish(self, run: JobRun, started: float, changed: int) -> Outcome:
        verification = Verifier(
            job=self.job,
            unit=self.unit,
            store=self.store,
            attempts=self.attempts,
            stopper=self.stopper,
            chunk_size=lambda: self.sizer.size,
            log=self.log,
        ).verify(self.info, checked=self.progress.total)
        if verification is None:
            return self.ending.stopped(Stop.SIGNAL)
        if verification.get("remaining"):
            raise JobFailed(
                f"verification found {verification['remaining']} rows still pending after a "
                "re-sweep"
            )
        # A run never finishes while it owes an effect (the re-sweep's, a quarantined row's).
        if (stop := self._deliver()) is not None:
            return self.ending.stopped(stop)
        if self.courier is not None:
            self.courier.report()
        return self.ending.completed(
            verification=verification,
            elapsed=self.clock() - started,
            done_at_start=run.done,
            changed=changed,
        )
