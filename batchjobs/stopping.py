"""Graceful stop on SIGINT/SIGTERM/SIGHUP: a predicate the runner checks between chunks.

The first signal only sets a flag, so the chunk in flight commits or rolls back as a
whole and the run is recorded as interrupted. A second signal raises ``ForcedStop`` at
once: the open transaction is rolled back by the database and the checkpoint, which
moves only with a commit, stays consistent. Handlers are restored on exit.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType

# SIGHUP too: an operator's SSH session that drops must not kill a run mid-chunk unrecorded.
# Keyed by number: a handler is given the signal as a plain int.
EXIT_CODE_FOR_SIGNAL: dict[int, int] = {
    signal.SIGHUP: 129,
    signal.SIGINT: 130,
    signal.SIGTERM: 143,
}


class ForcedStop(BaseException):
    """A second stop signal arrived: stop now, without waiting for the chunk in flight."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


class Stopper:
    """``patience``: how many stop signals only ask before one forces (1 for a run, whose
    chunk in flight may commit; 0 for a rehearsal, which has nothing to keep)."""

    def __init__(self, *, patience: int = 1) -> None:
        self.patience = patience
        self.event = threading.Event()
        self.signum: int | None = None
        self.forced = False
        self._held = False
        self._cancel_on_signal: Callable[[], None] | None = None

    @property
    def requested(self) -> bool:
        return self.event.is_set()

    @property
    def signal_name(self) -> str | None:
        return None if self.signum is None else signal.Signals(self.signum).name

    @property
    def exit_code(self) -> int:
        return 130 if self.signum is None else EXIT_CODE_FOR_SIGNAL.get(self.signum, 130)

    def request(self, signum: int) -> None:
        """First signal: ask. Second (the first, with no patience): raise ``ForcedStop``
        (once). Any later one: ignored, so that a third Ctrl-C cannot tear the recording of
        the interruption."""
        if not self.event.is_set():
            self.signum = signum
            self.event.set()
            if self.patience:
                return
        if not self.forced:
            self.forced = True
            raise ForcedStop(signum)

    def ask(self, signum: int) -> None:
        """Ask for a graceful stop, however many times this is called: for a request that
        may come more than once and must never force (a coordinator's death is told once
        per thread it had)."""
        if not self.event.is_set():
            self.signum = signum
            self.event.set()

    def pass_on(self) -> None:
        """Hand a stop signal this stopper took to the handler the process had (restored by
        now): for a task, whose signal was meant for the worker process that runs it
        (``db_worker`` then exits instead of taking the next task). Only a Python handler:
        a default or ignored disposition (RQ's work horse) is left alone, since acting on
        it would kill the task before it returns."""
        if self.signum is None or threading.current_thread() is not threading.main_thread():
            return
        handler = signal.getsignal(self.signum)
        if callable(handler):
            handler(self.signum, None)

    def hold(self) -> None:
        """Hold stop signals back until the enclosing ``released_on_exit`` block ends: for a
        moment that must not be torn (a COMMIT), since a handler that raises in the middle
        of it could leave the transaction half-closed. A held signal is handled right after."""
        if threading.current_thread() is threading.main_thread() and not self._held:
            signal.pthread_sigmask(signal.SIG_BLOCK, EXIT_CODE_FOR_SIGNAL)
            self._held = True

    @contextmanager
    def released_on_exit(self) -> Iterator[None]:
        try:
            yield
        finally:
            if self._held:
                self._held = False
                signal.pthread_sigmask(signal.SIG_UNBLOCK, EXIT_CODE_FOR_SIGNAL)

    @contextmanager
    def cancelling(self, cancel: Callable[[], None]) -> Iterator[None]:
        """For a statement with nothing to save (VACUUM after the run succeeded): the FIRST
        stop signal calls ``cancel`` from the watcher thread, so it ends now rather than
        when the statement would (Python's handler runs only once the driver returns)."""
        self._cancel_on_signal = cancel
        try:
            yield
        finally:
            self._cancel_on_signal = None

    def sleep(self, seconds: float) -> None:
        """Sleep, waking early when a stop is requested (for throttling and backoff)."""
        self.event.wait(max(0.0, seconds))

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self.request(signum)

    @contextmanager
    def installed(self, on_force: Callable[[], None] | None = None) -> Iterator[Stopper]:
        """Install SIGINT/SIGTERM/SIGHUP handlers for the duration; restore the previous ones.

        Python runs a handler only when the main thread is back in bytecode, not while it
        waits in a driver call (a long statement, a lock wait), and a signal repeated
        meanwhile is seen once. So a watcher thread also counts the signals as they come,
        through the wakeup fd, and on the second calls ``on_force`` (the runner cancels the
        statement in flight), which hands control back to the main thread at once.
        """
        if threading.current_thread() is not threading.main_thread():
            yield self  # signals can only be handled on the main thread
            return
        previous = {sig: signal.signal(sig, self._handle) for sig in EXIT_CODE_FOR_SIGNAL}
        read_fd, write_fd = os.pipe()
        os.set_blocking(write_fd, False)
        previous_fd = signal.set_wakeup_fd(write_fd, warn_on_full_buffer=False)
        watcher = threading.Thread(
            target=self._watch, args=(read_fd, on_force), name="stop-signal-watcher", daemon=True
        )
        watcher.start()
        try:
            yield self
        finally:
            signal.set_wakeup_fd(previous_fd)
            os.close(write_fd)
            watcher.join(timeout=1)
            os.close(read_fd)
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def _watch(self, read_fd: int, on_force: Callable[[], None] | None) -> None:
        seen = 0
        while chunk := os.read(read_fd, 64):
            new = sum(1 for signum in chunk if signum in EXIT_CODE_FOR_SIGNAL)
            seen += new
            cancel = self._cancel_on_signal
            if new and cancel is not None:
                cancel()
            if seen > self.patience and on_force is not None:
                on_force()
                on_force = None  # once
