"""structlog set-up and the progress event vocabulary (documented in docs/events.md).

Every record, the job's events and Django's own log lines alike, goes through one stdlib
handler and one renderer: JSON lines when the output is not a terminal (or on request),
and on a terminal a readable line per event plus one refreshing progress line.
"""

from __future__ import annotations

import logging
import sys
from typing import TYPE_CHECKING, Any, Protocol, TypeGuard

import structlog
from structlog.typing import EventDict, Processor, WrappedLogger

from batchjobs import sentences
from batchjobs.progress import format_duration

if TYPE_CHECKING:
    from django.core.management.base import OutputWrapper

LOGGER_NAME = "batchjobs"

STARTED = "job.started"
PROGRESS = "job.progress"
RETRY = "job.retry"
THROTTLED = "job.throttled"
PAUSED = "job.paused"
CANCELLED = "job.cancelled"
INTERRUPTED = "job.interrupted"
FAILED = "job.failed"
QUARANTINED = "job.quarantined"
VERIFIED = "job.verified"
FINISHED = "job.finished"
TUNED = "job.tuned"
VACUUM_STARTED = "job.vacuum_started"
VACUUM_FAILED = "job.vacuum_failed"
EFFECT_RETRY = "job.effect_retry"
EFFECTS_DELIVERED = "job.effects_delivered"
HOOK_FAILED = "job.hook_failed"
# A sliced run's workers: a slice taken (claimed or split off), done, or given up.
SLICE_CLAIMED = "slice.claimed"
SLICE_FINISHED = "slice.finished"
SLICE_RELEASED = "slice.released"
# A line a worker process wrote that is not an event (a traceback, a warning).
WORKER_SAID = "worker.said"
# A worker process killed by a signal nobody sent it here; the coordinator starts another.
WORKER_LOST = "worker.lost"


def get_logger(**bound: Any) -> structlog.stdlib.BoundLogger:
    """The library's logger, with ``bound`` on every event. Typed as the stdlib-backed
    logger that ``configure`` sets up; unconfigured (a test), structlog's default one has
    the same methods."""
    return structlog.stdlib.get_logger(LOGGER_NAME).bind(**bound)


class Stream(Protocol):
    """Where the events go: a text stream, or a management command's ``self.stdout``."""

    def write(self, text: str, /) -> object: ...

    def flush(self) -> object: ...


def configure(
    *, log_format: str | None = None, stream: Stream | None = None, verbosity: int = 1
) -> str:
    """Route structlog and stdlib logging to ``stream``; return the format chosen.

    ``log_format`` is ``"json"``, ``"console"`` or ``None`` (console on a terminal). On the
    console a run's events read as sentences; ``verbosity`` 2 or more (``runjob -v 2``)
    shows them as ``key=value`` lines instead, every field included. JSON ignores it.
    """
    stream = _raw(stream or sys.stdout)
    if log_format is None:
        log_format = "console" if _isatty(stream) else "json"
    shared: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    if log_format == "json":
        renderer: Processor = structlog.processors.JSONRenderer()
        handler: logging.Handler = logging.StreamHandler(stream)
    else:
        renderer = _ConsoleRenderer(colors=_isatty(stream), sentences=verbosity < 2)
        handler = _LiveLineHandler(stream)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=shared,
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.format_exc_info,
                renderer,
            ],
        )
    )
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=False,
    )
    return log_format


def _raw(stream: Stream) -> Stream:
    """A management command's ``self.stdout`` (Django's ``OutputWrapper``) ends every write
    with a newline: the live line must not get one. Write through it as it is."""
    if _ends_lines(stream):
        return _Unended(stream)
    return stream


def _ends_lines(stream: Stream) -> TypeGuard[OutputWrapper]:
    return hasattr(stream, "ending") and hasattr(stream, "style_func")


class _Unended:
    def __init__(self, wrapper: OutputWrapper) -> None:
        self._wrapper = wrapper

    def write(self, text: str) -> None:
        self._wrapper.write(text, ending="")

    def flush(self) -> None:
        self._wrapper.flush()

    def isatty(self) -> bool:
        return bool(self._wrapper.isatty())


def _isatty(stream: Stream) -> bool:
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


def progress_line(event: EventDict) -> str:
    """``rotate_ticket_tokens [######....]  61.0%  610,000/1,000,000  40,120 rows/s  ETA 9s``"""
    percent = event.get("percent")
    width = 24
    filled = 0 if percent is None else int(width * percent / 100)
    bar = "#" * filled + "." * (width - filled)
    total = event.get("total")
    rate = event.get("rate")
    parts = [
        f"{event.get('job', '')} [{bar}]",
        "   ?  %" if percent is None else f"{percent:5.1f}%",
        f"{event.get('done', 0):,}/{'?' if total is None else f'{total:,}'}",
        f"{rate:,.0f} rows/s" if rate else "- rows/s",
        f"ETA {format_duration(event.get('eta_seconds'))}",
        f"elapsed {format_duration(event.get('elapsed_seconds'))}",
    ]
    if event.get("chunk_size") is not None:  # `listjobs --follow` does not know it
        parts.append(f"chunk {event['chunk_size']:,}")
    return "  ".join(parts)


class _ConsoleRenderer:
    """The live line for ``job.progress``; a sentence for the run's other events (or, with
    ``sentences=False``, structlog's ``key=value`` line); anything else, such as Django's
    own records, as structlog's line."""

    _COLOURS = {"warning": "\x1b[33m", "error": "\x1b[31m"}

    def __init__(self, *, colors: bool, sentences: bool = True) -> None:
        self._lines = structlog.dev.ConsoleRenderer(colors=colors)
        self._colors = colors
        self._sentences = sentences
        # Rows a run had done when this process resumed it, so that ``job.finished`` can
        # tell this session's rows (which its duration and rate measure) from the run's.
        self._resumed_at: dict[object, int] = {}

    def __call__(self, logger: WrappedLogger, name: str, event: EventDict) -> str:
        kind = event.get("event")
        if kind == PROGRESS:
            return progress_line(event)
        if not self._sentences or kind not in sentences.SENTENCES:
            return self._lines(logger, name, event)
        if kind == STARTED and event.get("resumed"):
            self._resumed_at[event.get("run_id")] = event.get("done") or 0
        if kind == FINISHED:
            text = sentences.finished(event, resumed_at=self._resumed_at.get(event.get("run_id")))
        else:
            text = sentences.SENTENCES[kind](event)
        if event.get("worker") is not None:  # relayed from one of a run's workers
            text = f"worker {event['worker']}: {text}"
        colour = self._COLOURS.get(str(event.get("level", ""))) if self._colors else None
        return f"{colour}{text}\x1b[0m" if colour else text


class _LiveLineHandler(logging.StreamHandler[Stream]):
    """Progress events redraw one line in place; any other record starts below it."""

    _CLEAR = "\r\x1b[2K"

    def __init__(self, stream: Stream) -> None:
        super().__init__(stream)
        self._live = False

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = self.format(record)
            is_progress = isinstance(record.msg, dict) and record.msg.get("event") == PROGRESS
            if is_progress:
                self.stream.write(self._CLEAR + text)
                self._live = True
            else:
                prefix = "\n" if self._live else ""
                self.stream.write(prefix + text + "\n")
                self._live = False
            self.flush()
        except Exception:
            self.handleError(record)
