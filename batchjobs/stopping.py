"""Graceful stop on SIGINT/SIGTERM/SIGHUP: a predicate the runner checks between chunks.

The first signal only sets a flag, so the chunk in flight commits or rolls back as a
whole and the run is recorded as interrupted. A second signal raises ``ForcedStop`` at
once: the open transaction is rolled back by the database and the checkpoint, which
moves only with a commit, stays consistent. Handlers are restored on exit.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

# SIGHUP too: an operator's SSH session that drops must not kill a run mid-chunk unrecorded.
EXIT_CODE_FOR_SIGNAL = {signal.SIGHUP: 129, signal.SIGINT: 130, signal.SIGTERM: 143}


class ForcedStop(BaseException):
    """A second stop signal arrived: stop now, without waiting for the chunk in flight."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


class Stopper:
    def __init__(self) -> None:
        self.event = threading.Event()
        self.signum: int | None = None

    @property
    def requested(self) -> bool:
        return self.event.is_set()

    @property
    def signal_name(self) -> str | None:
        return None if self.signum is None else signal.Signals(self.signum).name

    @property
    def exit_code(self) -> int:
        return EXIT_CODE_FOR_SIGNAL.get(self.signum, 130)  # type: ignore[arg-type]

    def request(self, signum: int) -> None:
        if self.event.is_set():
            raise ForcedStop(signum)
        self.signum = signum
        self.event.set()

    def sleep(self, seconds: float) -> None:
        """Sleep, waking early when a stop is requested (for throttling and backoff)."""
        self.event.wait(max(0.0, seconds))

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self.request(signum)

    @contextmanager
    def installed(self) -> Iterator[Stopper]:
        """Install SIGINT/SIGTERM handlers for the duration; restore the previous ones."""
        if threading.current_thread() is not threading.main_thread():
            yield self  # signals can only be handled on the main thread
            return
        previous = {sig: signal.signal(sig, self._handle) for sig in EXIT_CODE_FOR_SIGNAL}
        try:
            yield self
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
