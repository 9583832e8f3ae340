"""Attempts: run one whole chunk transaction again on a transient error (tenacity's
policy from ``retry``), and record each retry: the event, the run's audit trail, a fresh
connection after a lost one, a smaller chunk after a statement timeout.

Only a whole transaction is retried, never a statement inside an open ``atomic()`` block:
the callable given opens its own (``ChunkUnit``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

from django.utils import timezone
from tenacity import RetryCallState

from batchjobs import events, retry
from batchjobs.conf import Settings
from batchjobs.database import reset_connection
from batchjobs.sizing import ChunkSizer
from batchjobs.stopping import Stopper
from batchjobs.store import RunStore

if TYPE_CHECKING:
    from django.db.backends.base.base import BaseDatabaseWrapper
    from structlog.stdlib import BoundLogger

T = TypeVar("T")


class Attempts:
    def __init__(
        self,
        *,
        settings: Settings,
        stopper: Stopper,
        store: RunStore,
        connection: BaseDatabaseWrapper,
        sizer: ChunkSizer,
        wait: Callable[[float], None],
        out_of_time: Callable[[], bool],
        log: BoundLogger,
    ) -> None:
        self.settings = settings
        self.stopper = stopper
        self.store = store
        self.connection = connection
        self.sizer = sizer
        self.wait = wait
        self.out_of_time = out_of_time
        self.log = log

    def __call__(self, attempt: Callable[[], T]) -> T:
        policy = retry.policy(
            max_attempts=self.settings.MAX_ATTEMPTS,
            max_wait=self.settings.MAX_RETRY_WAIT_SECONDS,
            sleep=self.wait,
            before_sleep=self._on_retry,
            stop_event=self.stopper.event,
            out_of_time=self.out_of_time,
        )
        return policy(attempt)

    def _on_retry(self, state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        assert exc is not None
        kind = retry.classify(exc)
        if kind is retry.ErrorKind.CONNECTION_LOST:
            reset_connection(self.connection)
        if kind is retry.ErrorKind.STATEMENT_TIMEOUT:
            self.sizer.shrink()
        error_class, error = retry.describe(exc)
        self.store.note_retry(
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
