"""Real signals, sent to this very process; the handlers in place before are restored."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator

import pytest

from batchjobs.stopping import EXIT_CODE_FOR_SIGNAL, ForcedStop, Stopper


def _deliver(signum: int) -> None:
    """Send a signal to ourselves and give the interpreter a moment to run its handler."""
    os.kill(os.getpid(), signum)
    for _ in range(100):
        time.sleep(0.001)


@pytest.fixture
def handlers_before() -> Iterator[dict[int, object]]:
    """The handlers in place before the test, put back whatever the test does."""
    saved = {sig: signal.getsignal(sig) for sig in (signal.SIGHUP, signal.SIGINT, signal.SIGTERM)}
    yield saved
    for sig, handler in saved.items():
        signal.signal(sig, handler)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("signum", "name", "code"),
    [
        (signal.SIGTERM, "SIGTERM", 143),
        (signal.SIGINT, "SIGINT", 130),
        (signal.SIGHUP, "SIGHUP", 129),
    ],
)
def test_stopper__first_signal_only_requests_a_stop(handlers_before, signum, name, code) -> None:
    stopper = Stopper()
    with stopper.installed():
        assert not stopper.requested
        _deliver(signum)
        assert stopper.requested
        assert stopper.signum == signum
        assert stopper.signal_name == name
        assert stopper.exit_code == code


def test_stopper__second_signal_forces_the_stop_at_once(handlers_before) -> None:
    stopper = Stopper()
    with stopper.installed():
        _deliver(signal.SIGTERM)
        with pytest.raises(ForcedStop) as caught:
            _deliver(signal.SIGINT)
    assert caught.value.signum == signal.SIGINT
    assert str(caught.value) == "SIGINT"
    assert stopper.signum == signal.SIGTERM  # the first signal still decides the exit code
    assert not issubclass(ForcedStop, Exception)  # `except Exception` does not swallow it


def test_stopper__previous_handlers_are_restored_on_exit(handlers_before) -> None:
    def mine(signum, frame) -> None:
        pass

    signal.signal(signal.SIGTERM, mine)
    with Stopper().installed():
        assert signal.getsignal(signal.SIGTERM) is not mine
    assert signal.getsignal(signal.SIGTERM) is mine
    assert signal.getsignal(signal.SIGINT) is handlers_before[signal.SIGINT]
    assert signal.getsignal(signal.SIGHUP) is handlers_before[signal.SIGHUP]


def test_stopper__handlers_are_restored_when_the_body_raises(handlers_before) -> None:
    with pytest.raises(RuntimeError), Stopper().installed():
        raise RuntimeError("the run blew up")
    assert signal.getsignal(signal.SIGTERM) is handlers_before[signal.SIGTERM]
    assert signal.getsignal(signal.SIGINT) is handlers_before[signal.SIGINT]


def test_stopper__signal_after_exit_goes_to_the_restored_handler(handlers_before) -> None:
    received: list[int] = []
    signal.signal(signal.SIGTERM, lambda signum, frame: received.append(signum))
    stopper = Stopper()
    with stopper.installed():
        pass
    _deliver(signal.SIGTERM)
    assert received == [signal.SIGTERM]
    assert not stopper.requested


def test_stopper__off_the_main_thread_installs_nothing(handlers_before) -> None:
    seen: list[object] = []

    def body() -> None:
        with Stopper().installed():
            seen.append(signal.getsignal(signal.SIGTERM))

    thread = threading.Thread(target=body)
    thread.start()
    thread.join()
    assert seen == [handlers_before[signal.SIGTERM]]


def test_stopper__sleep_wakes_early_on_a_stop_request() -> None:
    stopper = Stopper()
    timer = threading.Timer(0.05, stopper.request, args=(signal.SIGTERM,))
    started = time.monotonic()
    timer.start()
    stopper.sleep(10)
    assert time.monotonic() - started < 2
    assert stopper.requested


def test_stopper__sleep_of_negative_seconds_returns_at_once() -> None:
    started = time.monotonic()
    Stopper().sleep(-5)
    assert time.monotonic() - started < 0.5


def test_stopper__exit_code_without_a_signal_is_the_interrupt_code() -> None:
    assert Stopper().exit_code == 130
    assert EXIT_CODE_FOR_SIGNAL == {signal.SIGHUP: 129, signal.SIGINT: 130, signal.SIGTERM: 143}
