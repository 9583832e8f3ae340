"""Delivering the outbox: each owed effect handed to the job's ``deliver()`` after its
chunk committed, retried with backoff until it succeeds or the run is told to stop.

Every wait goes through the pacer (``Pacer.wait``), so a stop signal, a pause or cancel
request or ``--max-runtime`` ends it, and the heartbeat stays fresh while a receiver is
down. A stop leaves the effects owed in the outbox; the next session of the run (or the
job's next run) delivers them before any new chunk. The record of a delivery is written
after the receiver has it: a crash between the two delivers it again, with the same
idempotency key.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from tenacity import RetryCallState, Retrying, retry_if_exception, wait_exponential_jitter

from batchjobs import events, retry
from batchjobs.effects import Delivery
from batchjobs.job import ResumableJob
from batchjobs.models import Effect
from batchjobs.outbox import Outbox
from batchjobs.pacing import Pacer, Stop
from batchjobs.unit import failpoint

if TYPE_CHECKING:
    from structlog.stdlib import BoundLogger

T = TypeVar("T")

_FIRST_WAIT = 0.5  # seconds before the second attempt; doubling up to the settings' most


class _Stopping(Exception):
    """Raised instead of an attempt once the run is told to stop: ends the retries."""

    def __init__(self, stop: Stop) -> None:
        super().__init__(stop.value)
        self.stop = stop


class Courier:
    def __init__(
        self,
        *,
        job: ResumableJob,
        outbox: Outbox,
        pacer: Pacer,
        with_retries: Callable[[Callable[[], Any]], Any],
        max_wait: float,
        log: BoundLogger,
    ) -> None:
        self.job = job
        self.outbox = outbox
        self.pacer = pacer
        # The outbox's own queries, through the run's database retries (``Attempts``).
        self.with_retries = with_retries
        self.max_wait = max_wait
        self.log = log
        self.delivered = 0  # in this session

    def deliver_owed(self, *, announce: bool = False) -> Stop | None:
        """Deliver every effect owed, oldest first; ``None`` once none is left, else why it
        stopped (what it did not deliver stays owed, and the event says how many).
        ``announce``: say so when it delivered any (the effects owed by an earlier session,
        before the first chunk)."""
        while owed := self._db(self.outbox.owed):
            for effect in owed:
                stop = self._deliver(effect)
                if stop is not None:
                    self.report(pending=self._db(self.outbox.owed_count))
                    return stop
                self.pacer.keep_alive()
        if announce and self.delivered:
            self.report()
        return None

    def report(self, *, pending: int = 0) -> None:
        """How many effects this session delivered, and how many it leaves owed."""
        self.log.info(events.EFFECTS_DELIVERED, delivered=self.delivered, pending=pending)

    def _deliver(self, effect: Effect) -> Stop | None:
        attempts = Retrying(
            retry=retry_if_exception(lambda exc: not isinstance(exc, _Stopping)),
            stop=lambda state: False,  # until it succeeds: a stop request ends it instead
            wait=wait_exponential_jitter(
                multiplier=_FIRST_WAIT, max=self.max_wait, jitter=_FIRST_WAIT
            ),
            sleep=self.pacer.wait,
            before_sleep=lambda state: self._failed(effect, state),
            reraise=True,
        )
        try:
            attempt = attempts(self._attempt, effect)
        except _Stopping as stopping:
            return stopping.stop
        failpoint("after_delivery")
        self._db(lambda: self.outbox.delivered(effect.pk, attempt=attempt))
        self.delivered += 1
        return None

    def _attempt(self, effect: Effect) -> int:
        stop = self.pacer.stop_requested()
        if stop is not None:
            raise _Stopping(stop)
        attempt = effect.attempts + 1
        self.job.deliver(
            Delivery(run_id=effect.run_id, key=effect.key, payload=effect.payload, attempt=attempt)
        )
        return attempt

    def _failed(self, effect: Effect, state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        assert exc is not None
        error_class, error = retry.describe(exc)
        self._db(lambda: self.outbox.failed(effect.pk, error=f"{error} ({error_class})"))
        effect.attempts += 1
        self.log.warning(
            events.EFFECT_RETRY,
            key=effect.key,
            attempt=effect.attempts,
            error_class=error_class,
            error=error,
            wait_seconds=round(state.next_action.sleep, 3) if state.next_action else None,
        )

    def _db(self, query: Callable[[], T]) -> T:
        result: T = self.with_retries(query)
        return result
