"""Between chunks: stop requests, live tuning, health checks and sleeping.

Every wait of a run (``--sleep``, throttling, a retry's backoff) goes through ``wait``,
which keeps the heartbeat fresh however the waits follow each other (a throttled run is
not a stalled one), ends at ``--max-runtime``, and wakes early on a stop signal, a pause
or cancel request, or new tuning.
"""

from __future__ import annotations

import contextlib
import enum
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from django.db import DatabaseError

from batchjobs import events
from batchjobs.conf import Settings
from batchjobs.database import reset_if_broken
from batchjobs.health import HealthCheck, Verdict
from batchjobs.sizing import ChunkSizer
from batchjobs.stopping import Stopper
from batchjobs.store import Controls, RunStore

if TYPE_CHECKING:
    from django.db.backends.base.base import BaseDatabaseWrapper
    from structlog.stdlib import BoundLogger

# How often between chunks the health checks are asked, at most.
_HEALTH_CHECK_EVERY = 1.0


_Retrying = Callable[[Callable[[], Verdict | None]], Verdict | None]


def _once(check: Callable[[], Verdict | None]) -> Verdict | None:
    return check()


class Stop(enum.Enum):
    SIGNAL = "signal"
    PAUSE = "pause"
    CANCEL = "cancel"
    MAX_RUNTIME = "max_runtime"
    FAILED = "failed"  # another worker of a sliced run failed


class Pacer:
    def __init__(
        self,
        *,
        store: RunStore,
        connection: BaseDatabaseWrapper,
        stopper: Stopper,
        sizer: ChunkSizer,
        settings: Settings,
        health_checks: Sequence[HealthCheck],
        sleep_seconds: float,
        max_runtime: float | None,
        clock: Callable[[], float],
        log: BoundLogger,
        on_wait: Callable[[float], None] | None = None,
    ) -> None:
        self.store = store
        self.connection = connection
        self.stopper = stopper
        self.sizer = sizer
        self.settings = settings
        self.health_checks = health_checks
        self.sleep_seconds = sleep_seconds
        self.clock = clock
        self.log = log
        # Told how long each wait lasted (the progress estimator takes waits out of the rate).
        self.on_wait = on_wait
        # Health checks query the database: a server restart first noticed there is waited
        # out by the run's retries (``Attempts``), which the runner sets here.
        self.with_retries: _Retrying = _once
        self.controls = Controls()
        self._applied_tuning: dict[str, Any] = {}
        self._last_health_check = float("-inf")
        self._last_poll = float("-inf")
        now = clock()
        self.last_beat = now
        self.deadline = None if max_runtime is None else now + max_runtime

    def observe(self, controls: Controls) -> None:
        """The operator's requests, as last read (under a chunk's lock or while waiting)."""
        self.controls = controls

    def beat(self) -> None:
        """The heartbeat moved (a committed chunk moves it too)."""
        self.last_beat = self.clock()

    def keep_alive(self) -> None:
        """Between pieces of work that are neither chunks nor waits (delivering effects one
        after another): read the operator's requests once a second, as a wait does, and
        beat the heartbeat when it is due, so a long delivery is neither deaf nor a stall."""
        now = self.clock()
        if now - self._last_poll >= 1.0:
            self._last_poll = now
            with contextlib.suppress(DatabaseError):  # a lost database: the retries decide
                self._poll()
        if now - self.last_beat >= self.settings.HEARTBEAT_SECONDS:
            self._heartbeat()

    def past_deadline(self) -> bool:
        return self.deadline is not None and self.clock() >= self.deadline

    def stop_requested(self) -> Stop | None:
        if self.stopper.requested:
            return Stop.SIGNAL
        if self.controls.requested_action == "pause":
            return Stop.PAUSE
        if self.controls.requested_action == "cancel":
            return Stop.CANCEL
        if self.controls.requested_action == "fail":
            return Stop.FAILED
        if self.past_deadline():
            return Stop.MAX_RUNTIME
        return None

    def between_chunks(self) -> Stop | None:
        """Everything between two chunks; a reason to stop, or ``None`` to go on."""
        # With DEBUG=True Django keeps up to 9,000 queries per connection; keep none of ours.
        self.connection.queries_log.clear()
        # SQLite: leave the write lock free a moment, so a waiting writer (runjob --pause,
        # the application) gets its turn; its busy handler polls only every 100 ms.
        if self.connection.vendor == "sqlite":
            time.sleep(0.05)
        stop = self.stop_requested()
        if stop is not None:
            return stop
        self.apply_tuning()
        self._throttle()
        if self.sleep_seconds > 0:
            self.wait(self.sleep_seconds)
        # A wait may have lasted: look again at signals, requests and tuning before a chunk.
        stop = self.stop_requested()
        self.apply_tuning()
        return stop

    def apply_tuning(self) -> None:
        tuning = self.controls.tuning
        if tuning == self._applied_tuning:
            return
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
        if not self.health_checks or now - self._last_health_check < _HEALTH_CHECK_EVERY:
            return
        self._last_health_check = now
        while self.stop_requested() is None:
            # Through the retries: a server restart first noticed here is waited out too.
            verdict = self.with_retries(self._first_objection)
            if verdict is None:
                return
            self.log.warning(
                events.THROTTLED, reason=verdict.reason, wait_seconds=verdict.wait_seconds
            )
            self.wait(verdict.wait_seconds)

    def _first_objection(self) -> Verdict | None:
        return next((v for check in self.health_checks if (v := check(self.connection))), None)

    def wait(self, seconds: float) -> None:
        """Sleep in slices of at most a second: beat the heartbeat when it is due, end at
        --max-runtime, wake early on a stop signal, a request, or new tuning; then tell
        ``on_wait`` how long it lasted."""
        started = self.clock()
        try:
            self._wait(started + seconds)
        finally:
            if self.on_wait is not None:
                self.on_wait(self.clock() - started)

    def _wait(self, end: float) -> None:
        if self.deadline is not None:
            end = min(end, self.deadline)
        tuning = self.controls.tuning
        beat_every = self.settings.HEARTBEAT_SECONDS
        while not self.stopper.requested:
            left = end - self.clock()
            if left <= 0:
                return
            self.stopper.sleep(min(left, 1.0, beat_every))
            with contextlib.suppress(DatabaseError):  # a lost database: the retries decide
                self._poll()
            if self.controls.requested_action or self.controls.tuning != tuning:
                return
            if self.clock() - self.last_beat >= beat_every:
                self._heartbeat()

    def _poll(self) -> None:
        try:
            controls = self.store.controls()
        except DatabaseError:
            reset_if_broken(self.connection)
            raise
        if controls is not None:
            self.controls = controls

    def _heartbeat(self) -> None:
        try:
            self.store.heartbeat()  # LeaseLost goes up: this process must stop
        except DatabaseError:
            reset_if_broken(self.connection)
            return  # the next chunk's retries deal with a lost database
        self.beat()
