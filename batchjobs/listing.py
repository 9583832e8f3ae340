"""What ``listjobs`` shows of a run: a summary (also its JSON), short lines for a person,
and a live run followed from any terminal (reading the run row once a second; never
writing it)."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any

from django.utils import timezone

from batchjobs import control, events, outbox, sentences, slice_store, store
from batchjobs.models import JobRun, State
from batchjobs.parameters import as_flags, masked
from batchjobs.progress import format_duration

if TYPE_CHECKING:
    from django.core.management.base import OutputWrapper


def run_summary(run: JobRun | None) -> dict[str, Any] | None:
    if run is None:
        return None
    state = control.display_state(run)
    # The stored ETA is the last one the process wrote: it means something only while
    # that process is alive and at work (not paused, interrupted, failed or stalled).
    at_work = run.state == State.RUNNING and state != "stalled"
    return {
        "run_id": run.pk,
        "state": state,
        "done": run.done,
        "total": run.total,
        "percent": run.percent,
        "rate": run.rate,
        "eta_seconds": run.eta_seconds if at_work else None,
        "tuning": run.tuning,
        "chunks": run.chunks,
        "retries": run.retries,
        "quarantined": run.quarantined,
        "quarantined_keys": list(
            run.quarantined_rows.filter(resolved_at__isnull=True).values_list("key", flat=True)[:50]
        ),
        "started_by": run.started_by,
        "reason": run.reason,
        "options": run.options,
        "parameters": masked(run.parameters),
        "high_water_mark": run.high_water_mark,
        "cursor": run.cursor,
        "started_at": run.started_at.isoformat() if run.started_at else None,
        "heartbeat_at": run.heartbeat_at.isoformat() if run.heartbeat_at else None,
        "finished_at": run.finished_at.isoformat() if run.finished_at else None,
        "owner": f"pid {run.owner_pid} on {run.owner_host}" if run.owner_token else None,
        "error": f"{run.error_message} ({run.error_class})" if run.error_class else None,
        "verification": run.verification,
        "stats": run.stats,
        "effects": outbox.tally(run.pk, using=run._state.db or "default"),
        "slices": slice_store.described(run.pk, using=run._state.db or "default")
        if run.sliced
        else [],
    }


def detail_lines(run: dict[str, Any]) -> list[tuple[str, str]]:
    """A run's summary as ``(label, text)`` lines for a person; empty facts left out. A
    label of ``""`` continues the line above (one session per line)."""
    lines = [("state", run["state"])]
    progress = sentences.of_total(run["done"], run["total"])
    if run["eta_seconds"] is not None:  # only while its process is alive and at work
        rate = f", {run['rate']:,.0f} rows/s" if run["rate"] else ""
        progress += f"{rate}, ETA {format_duration(run['eta_seconds'])}"
    lines.append(("progress", progress))
    by = f"by {run['started_by']}" if run["started_by"] else ""
    started = " ".join(part for part in (short_time(run["started_at"]), by) if part)
    if run["reason"]:
        started = f"{started}: {run['reason']}" if started else run["reason"]
    if started:
        lines.append(("started", started))
    sessions = run["stats"].get("sessions") or []
    if len(sessions) > 1:  # one session is the "started" line already
        for i, session in enumerate(sessions):
            lines.append(("sessions" if i == 0 else "", _session(session)))
    if run["owner"]:
        lines.append(("owner", f"{run['owner']}, last heard {short_time(run['heartbeat_at'])}"))
    if run["slices"]:
        lines += _slice_lines(run["slices"])
    ended = run["stats"].get("ended_by")
    if ended:
        lines.append(
            (
                "ended by",
                f"{ended.get('by')} on {ended.get('host')} (pid {ended.get('pid')}): "
                f"{ended.get('action')}",
            )
        )
    if run["finished_at"]:
        lines.append(("finished", short_time(run["finished_at"])))
    if run["retries"]:
        lines.append(("retries", f"{run['retries']:,} over {run['chunks']:,} chunks"))
    if run["quarantined"]:
        keys = ", ".join(str(k) for k in run["quarantined_keys"])
        lines.append(("quarantined", f"{run['quarantined']:,} rows (keys {keys})"))
    if run["verification"]:
        lines.append(("verification", sentences.verified(run["verification"])))
    effects = run["effects"]
    if effects["delivered"] or effects["owed"]:
        text = f"{effects['delivered']:,} delivered, {effects['owed']:,} owed"
        if effects["failing"]:
            failing = effects["failing"]
            text += f"; failing after {failing['attempts']:,} attempts: {failing['last_error']}"
        lines.append(("effects", text))
    stats = run["stats"]
    before, after = stats.get("table_bytes_before"), stats.get("table_bytes_after")
    if before is not None:
        size = sentences.mib(before)
        if after is not None:
            size += f" -> {sentences.mib(after)}"
        vacuumed = stats.get("table_bytes_after_vacuum")
        if vacuumed is not None:
            size += f" ({sentences.mib(vacuumed)} after VACUUM ANALYZE)"
        lines.append(("table", size))
    if run["error"]:
        lines.append(("error", run["error"]))
    if run["parameters"]:
        lines.append(("parameters", as_flags(run["parameters"])))
    flags = sentences.options(run["options"] or {})
    if flags:
        lines.append(("options", flags))
    tuning = sentences.options(run["tuning"] or {})
    if tuning:
        lines.append(("tuning", tuning))
    if run["high_water_mark"] is not None:
        keys = f"up to {run['high_water_mark']}"
        if run["cursor"] is not None:
            keys += f", committed through {run['cursor']}"
        lines.append(("keys", keys))
    return lines


def _slice_lines(pieces: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """``workers`` (the live ones) and one line per slice not yet done."""
    working = [p for p in pieces if p["state"] == "working"]
    done = sum(1 for p in pieces if p["state"] == "done")
    at_work = f"{len(working)} at work" + "".join(f", {p['owner']}" for p in working)
    lines = [("workers", at_work), ("slices", f"{len(pieces)}, {done} done")]
    for p in pieces:
        if p["state"] != "done":
            keys = f"keys {p['lower'] if p['lower'] is not None else 'start'}..{p['upper']}"
            where = f", at {p['cursor']}" if p["cursor"] != p["lower"] else ""
            counts = f"{p['done']:,} of ~{p['planned']:,}"
            lines.append(("", f"#{p['number']} {p['state']}: {keys}{where}, {counts}"))
    return lines


def _session(session: dict[str, Any]) -> str:
    """``alice on db-1, 2026-11-30 10:02 (pid 812): INC-9``."""
    text = f"{session.get('by', '?')} on {session.get('host', '?')}, "
    text += f"{short_time(session.get('at'))[:16]} (pid {session.get('pid', '?')})"
    if session.get("reason"):
        text += f": {session['reason']}"
    return text


class Follower:
    """``listjobs NAME --follow``: reads the run row once a second (never writes it) and
    shows the same live line as ``runjob`` would, until the run is no longer running."""

    INTERVAL_SECONDS = 1.0
    _CLEAR = "\r\x1b[2K"

    def __init__(
        self, job: str, stdout: OutputWrapper, *, sleep: Callable[[float], None] = time.sleep
    ) -> None:
        self.job = job
        self.stdout = stdout
        self.sleep = sleep
        self.terminal = bool(stdout.isatty())

    def follow(self) -> None:
        run = store.unfinished(self.job)
        if run is None:
            self.stdout.write(f"{self.job} has no unfinished run: nothing to follow.")
            return
        live = False
        while run.state == State.RUNNING and control.display_state(run) != "stalled":
            line = events.progress_line(_progress_event(run))
            if self.terminal:
                self.stdout.write(self._CLEAR + line, ending="")
                live = True
            else:
                self.stdout.write(line)
            self.stdout.flush()  # a pipe is block-buffered: each line as it comes
            self.sleep(self.INTERVAL_SECONDS)
            run.refresh_from_db()
        if live:
            self.stdout.write("")
        self.stdout.write(ended(run))


def _progress_event(run: JobRun) -> dict[str, Any]:
    """The run row in the shape of a ``job.progress`` event, for ``events.progress_line``."""
    sessions = run.stats.get("sessions") or []
    since = sessions[-1].get("at") if sessions else None
    elapsed = None
    if since:
        elapsed = (timezone.now() - datetime.fromisoformat(since)).total_seconds()
    return {
        "job": run.job,
        "done": run.done,
        "total": run.total,
        "percent": run.percent,
        "rate": run.rate,
        "eta_seconds": run.eta_seconds,
        "elapsed_seconds": elapsed,
    }


def ended(run: JobRun) -> str:
    """How a run stands once it is no longer at work, as one sentence."""
    state = control.display_state(run)
    head = f"Run #{run.pk} of {run.job}"
    rows = sentences.of_total(run.done, run.total, " rows")
    resume = f"python manage.py runjob {run.job}"
    if run.state == State.SUCCEEDED:
        return f"{head} succeeded: {rows}."
    if run.state == State.QUARANTINED:
        return (
            f"{head} succeeded with {run.quarantined:,} rows quarantined: {rows}. Fix them, "
            f"then: {resume} --retry-quarantined"
        )
    if state == "stalled":
        return f"{head} is stalled at {rows}: its process is gone. Continue with: {resume}"
    if run.state == State.PAUSED:
        return f"{head} is paused at {rows}. Continue with: {resume} --resume"
    if run.state in (State.INTERRUPTED, State.FAILED):
        why = f" ({run.error_message})" if run.error_message else ""
        return f"{head} is {run.state} at {rows}{why}. Continue with: {resume}"
    return f"{head} is {state} at {rows}."


def short_time(iso: str | None) -> str:
    return "" if not iso else iso[:19].replace("T", " ")
