"""The terminal's wording of the events: one short sentence each.

Pure: it reads the fields of an event dict (docs/events.md) and returns text. Events never
carry a token or a row value, and nothing here adds one. The key=value form (``-v 2``) and
the JSON lines stay the contract; these sentences are for a person and may be reworded.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from batchjobs.parameters import as_flags
from batchjobs.progress import format_duration

Event = Mapping[str, Any]

MIB = 1024 * 1024


def count(value: int | None) -> str:
    """``1000000`` -> ``1,000,000``; ``None`` -> ``?``."""
    return "?" if value is None else f"{value:,}"


def mib(size: int | None) -> str:
    """Bytes as ``64.0 MiB``; ``None`` -> ``?``."""
    return "?" if size is None else f"{size / MIB:,.1f} MiB"


def of_total(done: int | None, total: int | None, unit: str = "") -> str:
    """``250,000 of 1,000,000 (25.0%)`` (with ``unit=" rows"``: ``250,000 of 1,000,000 rows
    (25.0%)``), or ``250,000`` when the total is not known."""
    if total is None:
        return count(done) + unit
    if not total:
        return f"{count(done)} of 0{unit}"
    return f"{count(done)} of {count(total)}{unit} ({100 * (done or 0) / total:.1f}%)"


def seconds(value: float | None) -> str:
    """A short wait: ``0.35`` -> ``0.3s`` (below 10 s), else as ``format_duration``."""
    if value is not None and value < 10:
        return f"{value:.1f}s"
    return format_duration(value)


def options(values: Mapping[str, Any]) -> str:
    """A session's non-default options as the flags that gave them: ``--batch-size 5000``,
    in a fixed order (PostgreSQL's jsonb does not keep the order they were stored in)."""
    flags = []
    for key, value in sorted(values.items()):
        if key == "reason":  # said on its own
            continue
        flag = "--" + key.replace("_", "-")
        flags.append(flag if value is True else f"{flag} {value}")
    return ", ".join(flags)


def _run(event: Event) -> str:
    return f"run #{event.get('run_id', '?')} of {event.get('job', '?')}"


def _short_class(name: object) -> str:
    return str(name).rsplit(".", 1)[-1]


def started(event: Event) -> str:
    total = event.get("total")
    rows = "an unknown number of rows" if total is None else f"{count(total)} rows"
    by = event.get("started_by") or "?"
    if event.get("resumed"):
        text = f"Resumed {_run(event)} at {of_total(event.get('done'), total, ' rows')}, by {by}"
        creator = event.get("run_started_by")
        if creator and creator != by:
            text += f" (started by {creator})"
        text += "."
    else:
        text = f"Started {_run(event)}: {rows}, by {by}."
    workers = event.get("workers")
    if event.get("joined"):
        text = (
            f"Joined {_run(event)} with {count(workers)} more workers, at "
            f"{of_total(event.get('done'), total, ' rows')}, by {by}."
        )
    elif workers:
        text = f"{text[:-1]}, with {count(workers)} workers."
    reason = event.get("reason") or event.get("run_reason")
    if reason:
        text += f" Reason: {reason}."
    given = as_flags(event.get("parameters") or {})  # masked already, like every field
    if given:
        text += f" Parameters: {given}."
    flags = options(event.get("options") or {})
    if flags:
        text += f" Options: {flags}."
    return text


def finished(event: Event, *, resumed_at: int | None = None) -> str:
    """``resumed_at``: the rows done before this session, when the renderer saw it resume."""
    done = event.get("done") or 0
    quarantined = event.get("quarantined") or 0
    duration = format_duration(event.get("duration_seconds"))
    rate = event.get("rate")
    pace = f", {rate:,.0f} rows/s" if rate else ""
    run = f"Run #{event.get('run_id', '?')}"
    if quarantined:
        text = (
            f"{run} succeeded with {count(quarantined)} rows quarantined: "
            f"{of_total(done, event.get('total'), ' rows')}"
        )
    else:
        text = f"{run} succeeded: {count(done)} rows"
    if resumed_at:
        text += f" ({count(done - resumed_at)} in this session: {duration}{pace})."
    else:
        text += f" in {duration}" + (f" ({rate:,.0f} rows/s)." if rate else ".")
    before, after = event.get("table_bytes_before"), event.get("table_bytes_after")
    if before is not None and after is not None:
        text += f" Table {mib(before)} -> {mib(after)}"
        vacuumed = event.get("table_bytes_after_vacuum")
        if vacuumed is not None:
            took = seconds(event.get("vacuum_seconds"))
            text += f", {mib(vacuumed)} after VACUUM ANALYZE ({took})."
        else:
            text += "; VACUUM ANALYZE reclaims the dead rows: see --vacuum."
    if quarantined:
        text += (
            " Fix the quarantined rows (listjobs shows their keys), then: "
            f"python manage.py runjob {event.get('job', '?')} --retry-quarantined"
        )
    return text


def verified(event: Event) -> str:
    checked = event.get("checked")
    stale, reswept = event.get("stale_found") or 0, event.get("reswept") or 0
    remaining = event.get("remaining") or 0
    rows = "every row" if checked is None else f"{count(checked)} rows"
    if not stale and not remaining:
        return f"Verified {rows}: none still needs the job."
    text = f"Verified {rows}: {count(stale)} still needed the job, {count(reswept)} re-swept"
    if remaining:
        return text + f", {count(remaining)} still need it: the run fails."
    return text + ", none left."


def interrupted(event: Event) -> str:
    cause = event.get("cause") or "?"
    done = of_total(event.get("done"), event.get("total"), " rows")
    if cause == "database lost":
        text = (
            f"Lost the database after {done} ({event.get('error', '?')}); "
            "every committed chunk is kept."
        )
    elif event.get("signal") is None:
        text = f"Stopped after {done}: {cause}; every committed chunk is kept."
    elif cause == event.get("signal"):
        text = f"Interrupted by {cause} after {done}; every committed chunk is kept."
    else:
        text = (
            f"Interrupted by {cause} after {done} (the chunk in flight rolled back); "
            "every committed chunk is kept."
        )
    return text + f" Resume with: {event.get('resume_command', '?')}"


def stopped(event: Event) -> str:
    """``job.paused`` and ``job.cancelled``: their ``message`` says what to do next."""
    message = str(event.get("message") or "").rstrip(".")
    return f"{message}. Rows done: {of_total(event.get('done'), event.get('total'))}."


def failed(event: Event) -> str:
    text = (
        f"Run #{event.get('run_id', '?')} failed ({_short_class(event.get('error_class'))}): "
        f"{str(event.get('error') or '?').rstrip('.')}."
    )
    if event.get("done") is not None:
        text += f" Rows done: {count(event.get('done'))}"
        quarantined = event.get("quarantined")
        text += f", {count(quarantined)} quarantined." if quarantined else "."
    return text


def retry(event: Event) -> str:
    return (
        f"Attempt {event.get('attempt', '?')} failed with {event.get('error_kind', '?')} "
        f"({event.get('error', '?')}); retrying in {seconds(event.get('wait_seconds'))} "
        f"with chunks of {count(event.get('chunk_size'))} rows."
    )


def throttled(event: Event) -> str:
    return f"Throttled: {event.get('reason', '?')}; waiting {seconds(event.get('wait_seconds'))}."


def quarantined(event: Event) -> str:
    return (
        f"Quarantined the row with key {event.get('key', '?')} "
        f"({_short_class(event.get('error_class'))}: {event.get('error', '?')}); "
        "the run goes on without it."
    )


def tuned(event: Event) -> str:
    sleep = event.get("sleep") or 0
    pause = f"{seconds(sleep)} between chunks" if sleep else "no sleep between chunks"
    return f"Tuned: chunks of {count(event.get('chunk_size'))} rows, {pause}."


def vacuum_started(event: Event) -> str:
    return (
        f"VACUUM ANALYZE {event.get('table', '?')} (waits at most "
        f"{seconds(event.get('lock_timeout_seconds'))} for its lock; Ctrl-C skips it)."
    )


def vacuum_failed(event: Event) -> str:
    return (
        f"VACUUM ANALYZE did not complete: {event.get('cause', '?')}. "
        "The run stands; VACUUM ANALYZE the table by hand."
    )


def effect_retry(event: Event) -> str:
    return (
        f"Delivering the effect for key {event.get('key', '?')} failed (attempt "
        f"{event.get('attempt', '?')}: {event.get('error', '?')}); retrying in "
        f"{seconds(event.get('wait_seconds'))}. Ctrl-C stops; the effect stays owed."
    )


def effects_delivered(event: Event) -> str:
    text = f"Delivered {count(event.get('delivered'))} outside effects"
    pending = event.get("pending")
    if pending:
        return f"{text}; {count(pending)} still owed, delivered first by the next run."
    return f"{text}; none owed."


def hook_failed(event: Event) -> str:
    return (
        f"The job's {event.get('hook', '?')} hook raised "
        f"{_short_class(event.get('error_class'))}: {str(event.get('error') or '?').rstrip('.')}. "
        "The run's state and checkpoint are as recorded."
    )


def slice_claimed(event: Event) -> str:
    lower = event.get("cursor")
    keys = f"keys after {lower}" if lower is not None else "keys from the start"
    return (
        f"Took slice {event.get('slice', '?')}: {keys} up to {event.get('upper', '?')}, "
        f"about {count(event.get('planned'))} rows."
    )


def slice_finished(event: Event) -> str:
    return f"Slice {event.get('slice', '?')} done."


def slice_released(event: Event) -> str:
    slice_, why = event.get("slice", "?"), event.get("why", "?")
    return f"Gave slice {slice_} back ({why}): it goes on from its checkpoint."


def worker_lost(event: Event) -> str:
    return (
        f"Worker {event.get('pid', '?')} was killed ({event.get('signal', '?')}); its slice "
        f"goes on from its checkpoint, and worker {event.get('replaced_by', '?')} takes its place."
    )


def worker_said(event: Event) -> str:
    return str(event.get("text", ""))


SENTENCES: dict[str, Callable[[Event], str]] = {
    "job.started": started,
    "job.finished": finished,
    "job.verified": verified,
    "job.interrupted": interrupted,
    "job.paused": stopped,
    "job.cancelled": stopped,
    "job.failed": failed,
    "job.retry": retry,
    "job.throttled": throttled,
    "job.quarantined": quarantined,
    "job.tuned": tuned,
    "job.vacuum_started": vacuum_started,
    "job.vacuum_failed": vacuum_failed,
    "job.effect_retry": effect_retry,
    "job.effects_delivered": effects_delivered,
    "job.hook_failed": hook_failed,
    "slice.claimed": slice_claimed,
    "slice.finished": slice_finished,
    "slice.released": slice_released,
    "worker.said": worker_said,
    "worker.lost": worker_lost,
}
