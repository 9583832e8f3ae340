"""``runjob NAME --workers N``: start (or join) a sliced run and share it among N worker
processes on this host, speaking for all of them.

The coordinator writes no chunk. It claims the run (a new sliced run, a stalled one taken
over, or a live one joined: the same command on a second host adds its workers), starts N
``runjob NAME --worker-for RUN`` processes, passes a stop signal on to them, relays their
events (with the slice and the worker's pid) as its own, and reports the run's progress as
the sum over its slices: one live line on a terminal, one stream of JSON events otherwise.

Workers run in a process group of their own, so a Ctrl-C at the terminal reaches them once,
through the coordinator; and they are asked to stop if the coordinator dies, so a kill -9 of
it leaves no worker behind: they give their slices back and the last one records the end.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import logging
import os
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import asdict
from typing import IO, NoReturn

from django.db import DatabaseError, InterfaceError, connections, router

from batchjobs import conf, events, retry, slice_store
from batchjobs.claim import os_user
from batchjobs.database import reset_if_broken
from batchjobs.ending import Outcome
from batchjobs.exceptions import DatabaseUnavailable
from batchjobs.exit_codes import ExitCode
from batchjobs.job import ResumableJob
from batchjobs.keyset import check_queryset
from batchjobs.lease import Owner
from batchjobs.models import JobRun, State
from batchjobs.options import RunOptions
from batchjobs.parameters import masked
from batchjobs.progress import ProgressEstimator
from batchjobs.sharing import claim_shared
from batchjobs.stopping import ForcedStop, Stopper
from batchjobs.worker import SliceWorker, check_can_share

_PR_SET_PDEATHSIG = 1
COORDINATOR_PID = "BATCHJOBS_COORDINATOR_PID"
# Fields a relayed event carries already, or that the coordinator's logger adds itself.
_OWN_FIELDS = ("event", "level", "timestamp", "logger", "job")


def stop_with_coordinator(stopper: Stopper) -> None:
    """In a worker process started by a coordinator: stop gracefully when the coordinator
    dies, however it dies (Linux's parent-death signal; SIGUSR1, which only ever asks, since
    the kernel tells it once per thread the coordinator had), and now if it already has."""
    coordinator = os.environ.get(COORDINATOR_PID)
    if not coordinator:
        return
    signal.signal(signal.SIGUSR1, lambda signum, frame: stopper.ask(signal.SIGTERM))
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGUSR1)
    if os.getppid() != int(coordinator):
        stopper.ask(signal.SIGTERM)


class _Forked:
    """A forked worker, seen as ``subprocess.Popen`` shows a child: its pid, ``poll()``
    (its exit code once reaped: negative for a signal) and ``send_signal()``."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.returncode: int | None = None

    def poll(self) -> int | None:
        if self.returncode is None:
            with contextlib.suppress(ChildProcessError):
                pid, status = os.waitpid(self.pid, os.WNOHANG)
                if pid:
                    self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def send_signal(self, signum: int) -> None:
        if self.poll() is None:
            os.kill(self.pid, signum)


class Coordinator:
    def __init__(
        self,
        job: ResumableJob,
        options: RunOptions,
        *,
        workers: int,
        worker_args: Sequence[str] = (),
        stopper: Stopper | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.job = job
        self.options = options
        self.workers = workers
        self.worker_args = list(worker_args)
        self.stopper = stopper or Stopper()
        self.clock = clock
        self.settings = conf.get()
        self.owner = Owner.current()
        self.log = events.get_logger(job=job.name)
        queryset = job.get_queryset()
        check_queryset(queryset)
        self.alias = router.db_for_write(queryset.model)
        self.processes: list[_Forked] = []
        self.readers: list[threading.Thread] = []

    def run(self) -> Outcome:
        check_can_share(self.job, connections[self.alias].vendor, self.workers)
        with self.stopper.installed():
            run, joined = claim_shared(self.job, self.options, owner=self.owner, alias=self.alias)
            self.log = self.log.bind(run_id=run.pk)
            self.log.info(
                events.STARTED,
                resumed=run.done > 0 or run.chunks > 0,
                joined=joined,
                workers=self.workers,
                done=run.done,
                total=run.total,
                high_water_mark=run.high_water_mark,
                options=run.options,
                parameters=masked(run.parameters),
                started_by=os_user(),
                reason=self.options.reason,
                run_started_by=run.started_by,
                run_reason=run.reason,
            )
            codes = self._supervise(run)
            return self._outcome(run, codes, joined=joined)

    # -- the workers -----------------------------------------------------------------

    def _spawn(self, run: JobRun) -> _Forked:
        """A worker: this process forked, with Django set up and the job made already (a
        new interpreter would spend about a second importing them: 10 % of a million-row
        run). Its events come back through a pipe, as JSON lines."""
        group = self.processes[0].pid if self.processes else 0
        # A forked child must not share this process's database connection: closed here,
        # it is opened again on first use, here and in each child.
        connections.close_all()
        events_out, events_in = os.pipe()
        text_out, text_in = os.pipe()
        pid = os.fork()
        if pid == 0:  # the worker: never returns
            os.close(events_out)
            os.close(text_out)
            self._be_worker(run, group=group, events_fd=events_in, text_fd=text_in)
        os.close(events_in)
        os.close(text_in)
        process = _Forked(pid)
        for fd, relay in ((events_out, self._relay_events), (text_out, self._relay_text)):
            stream = os.fdopen(fd, "r", encoding="utf-8", errors="replace")
            reader = threading.Thread(target=relay, args=(stream, pid), daemon=True)
            reader.start()
            self.readers.append(reader)
        return process

    def _be_worker(self, run: JobRun, *, group: int, events_fd: int, text_fd: int) -> NoReturn:
        """In the forked child: a worker of ``run`` until it stops; then exit with its code."""
        code = int(ExitCode.FAILED)
        try:
            os.setpgid(0, group)  # Ctrl-C at the terminal reaches the workers through us
            for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
                signal.signal(signum, signal.SIG_DFL)  # the coordinator's, until the worker's
            os.dup2(text_fd, 2)
            os.close(text_fd)
            sys.stderr = open(2, "w", buffering=1, encoding="utf-8", closefd=False)  # noqa: SIM115
            stream = open(events_fd, "w", buffering=1, encoding="utf-8")  # noqa: SIM115
            os.environ[COORDINATOR_PID] = str(os.getppid())
            stopper = Stopper()
            stop_with_coordinator(stopper)
            events.configure(log_format="json", stream=stream)
            code = (
                SliceWorker(self.job, self.options, run_id=run.pk, rolls_up=False, stopper=stopper)
                .work()
                .exit_code
            )
        except BaseException:  # a worker must never return into the coordinator's code
            traceback.print_exc()
        finally:
            with contextlib.suppress(BaseException):
                sys.stderr.flush()
            os._exit(code)

    def _relay_events(self, stream: IO[str], pid: int) -> None:
        """A worker's JSON events, as the coordinator's own (its progress is summed here)."""
        for line in stream:
            try:
                event = json.loads(line)
            except ValueError:
                self._relay_line(line, pid)
                continue
            if not isinstance(event, dict) or event.get("event") == events.PROGRESS:
                continue
            name = str(event.get("event"))
            level = logging.getLevelName(str(event.get("level", "info")).upper())
            fields = {k: v for k, v in event.items() if k not in _OWN_FIELDS}
            fields.setdefault("worker", pid)
            self.log.log(level if isinstance(level, int) else logging.INFO, name, **fields)

    def _relay_text(self, stream: IO[str], pid: int) -> None:
        for line in stream:
            self._relay_line(line, pid)

    def _relay_line(self, line: str, pid: int) -> None:
        if line.strip():
            self.log.warning(events.WORKER_SAID, worker=pid, text=line.rstrip())

    def _supervise(self, run: JobRun) -> list[int]:
        """Start the workers, report progress until they all exit, pass stop signals on."""
        self.processes = []
        for _ in range(self.workers):
            self.processes.append(self._spawn(run))
        progress = ProgressEstimator(total=run.total, done=run.done, started_at=self.clock())
        passed_on = 0
        last_emit = self.clock()
        replaced: set[int] = set()
        while any(p.poll() is None for p in self.processes):
            try:
                if self.stopper.requested and passed_on == 0:
                    passed_on = self._pass_on()
                self.stopper.sleep(0.2)
            except ForcedStop:
                passed_on = self._pass_on()
            if not self.stopper.requested:
                self._replace_lost(run, replaced)
            now = self.clock()
            if now - last_emit >= self.settings.PROGRESS_INTERVAL_SECONDS:
                last_emit = now
                self._report(run, progress, now)
        self._report(run, progress, self.clock())
        for reader in self.readers:  # the workers' last words (the run's end) come before ours
            reader.join(timeout=5)
        return [code for p in self.processes if (code := p.poll()) is not None]

    def _replace_lost(self, run: JobRun, replaced: set[int]) -> None:
        """A worker killed by a signal nobody here sent (kill -9, the OOM killer) is
        replaced while the run goes on: its slice waits for the next worker that looks,
        and there should be as many as the operator asked for. At most as many
        replacements as workers, so a worker that cannot live is not restarted for ever."""
        for process in list(self.processes):
            code = process.poll()
            if code is None or code >= 0 or process.pid in replaced:
                continue
            replaced.add(process.pid)
            if len(replaced) > self.workers or not slice_store.unfinished_count(
                run.pk, using=self.alias
            ):
                continue
            new = self._spawn(run)
            self.processes.append(new)
            self.log.warning(
                events.WORKER_LOST,
                pid=process.pid,
                signal=signal.Signals(-code).name,
                replaced_by=new.pid,
            )

    def _pass_on(self) -> int:
        signum = self.stopper.signum or signal.SIGTERM
        for process in self.processes:
            if process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    process.send_signal(signum)
        return signum

    def _report(self, run: JobRun, progress: ProgressEstimator, now: float) -> None:
        try:
            sums = slice_store.totals(run.pk, using=self.alias)
            state = JobRun.objects.using(self.alias).values_list("state", flat=True).get(pk=run.pk)
        except (DatabaseError, InterfaceError):
            # The workers' retries deal with a lost database; report when it is back, on a
            # new connection.
            with contextlib.suppress(DatabaseError, InterfaceError):
                reset_if_broken(connections[self.alias])
            return
        if state != State.RUNNING:
            return  # ended: the worker that recorded the end said so (job.finished is last)
        if sums.done > progress.done:
            progress.advance(sums.done - progress.done, now=now)
        snap = progress.snapshot(now=now, sleep_per_chunk=0.0, chunk_size=0)
        with contextlib.suppress(DatabaseError, InterfaceError):
            slice_store.roll_up(run.pk, using=self.alias, rate=snap.rate, eta=snap.eta_seconds)
        live = sum(1 for p in self.processes if p.poll() is None)
        fields = {**asdict(snap), "chunk_size": None}
        self.log.info(
            events.PROGRESS,
            **fields,
            quarantined=sums.quarantined,
            workers=live,
            slices=sums.slices,
            slices_left=sums.unfinished,
        )

    # -- the end -------------------------------------------------------------------------

    def _outcome(self, run: JobRun, codes: list[int], *, joined: bool) -> Outcome:
        """The run's state once this host's workers are gone, as one sentence and code."""
        try:
            reset_if_broken(connections[self.alias])
            current = JobRun.objects.using(self.alias).get(pk=run.pk)
        except (DatabaseError, InterfaceError) as exc:
            raise DatabaseUnavailable(
                f"Run #{run.pk} of {self.job.name}: this host's workers stopped, and the "
                f"database could not be asked how the run stands ({retry.describe(exc)[1]}). "
                f"Every committed chunk is kept: see `listjobs {self.job.name}` when it is "
                f"back, and resume with `runjob {self.job.name} --workers {self.workers}`."
            ) from None
        state = State(current.state)
        name, rid = self.job.name, run.pk
        failures = sorted({c for c in codes if c not in (0,)})
        if state == State.SUCCEEDED:
            return Outcome(rid, state, 0, f"Run #{rid} of {name} succeeded: {current.done:,} rows.")
        if state == State.QUARANTINED:
            return Outcome(
                rid, state, int(ExitCode.QUARANTINED),
                f"Run #{rid} of {name} finished with {current.quarantined} quarantined rows; "
                f"fix them, then `runjob {name} --retry-quarantined`.",
            )  # fmt: skip
        if state == State.PAUSED:
            return Outcome(
                rid, state, int(ExitCode.PAUSED),
                f"Run #{rid} of {name} is paused: continue with `runjob {name} --resume "
                f"--workers {self.workers}`.",
            )  # fmt: skip
        if state == State.CANCELLED:
            return Outcome(
                rid, state, int(ExitCode.CANCELLED),
                f"Run #{rid} of {name} is cancelled: the run will not be continued.",
            )  # fmt: skip
        if state == State.FAILED:
            return Outcome(
                rid, state, int(ExitCode.FAILED),
                f"Run #{rid} of {name} failed: {current.error_message} ({current.error_class}). "
                f"Its checkpoint is kept; after a fix, `runjob {name} --workers "
                f"{self.workers}` resumes it.",
            )  # fmt: skip
        left = f"{current.done:,} of {current.total or 0:,} rows done"
        resume = f"python manage.py runjob {name} --workers {self.workers}"
        if self.stopper.requested:
            code = self.stopper.exit_code
            why = f"interrupted by {self.stopper.signal_name}"
        elif ExitCode.MAX_RUNTIME in codes:
            code, why = (
                int(ExitCode.MAX_RUNTIME),
                f"stopped at --max-runtime {self.options.max_runtime:g}s",
            )
        elif ExitCode.DATABASE_UNAVAILABLE in codes:
            code, why = int(ExitCode.DATABASE_UNAVAILABLE), "lost the database"
        elif failures:
            code, why = int(ExitCode.FAILED), f"left by workers that exited with {failures}"
        else:
            code, why = 0, "left to its other workers"
        if state == State.RUNNING:
            return Outcome(
                rid, state, code,
                f"Run #{rid} of {name}: this host's workers stopped ({why}) after {left}; "
                f"workers elsewhere go on, or resume with: {resume}",
            )  # fmt: skip
        return Outcome(
            rid, state, code or int(ExitCode.FAILED),
            f"Run #{rid} of {name} {why} after {left}; every committed chunk is kept. "
            f"Resume with: {resume}",
        )  # fmt: skip
