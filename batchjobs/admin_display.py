"""How the admin shows a run: the live cells ``static/batchjobs/live.js`` refreshes, and
small tables for what a run stores as JSON (options, sessions, retries, verification),
so that no dict is ever printed raw. Values are escaped."""

from __future__ import annotations

from typing import Any

from django.urls import reverse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString, mark_safe

from batchjobs import control
from batchjobs.models import UNFINISHED, JobRun
from batchjobs.progress import format_duration


def live_values(run: JobRun) -> dict[str, Any]:
    """What the list and the run page show of a run's progress, in the form both the first
    render and ``live.js``'s refresh use, so that the two never disagree."""
    percent = run.percent or 0.0
    return {
        "live": run.state in UNFINISHED,
        "state": control.display_state(run),
        "percent": percent,
        "progress": (
            f"{percent}% ({run.done:,} / {'?' if run.total is None else f'{run.total:,}'})"
        ),
        "rate": "-" if run.rate is None else f"{run.rate:,.0f} rows/s",
        "eta": format_duration(run.eta_seconds) if run.finished_at is None else "-",
        "done": f"{run.done:,}",
        "chunks": f"{run.chunks:,}",
    }


def cell(run: JobRun, field: str, inner: SafeString | str) -> SafeString:
    """A value ``live.js`` refreshes: it finds it by run and field."""
    return format_html(
        '<span class="batchjobs-live" data-run="{}" data-field="{}" data-live="{}" '
        'data-url="{}">{}</span>',
        run.pk,
        field,
        "1" if run.state in UNFINISHED else "0",
        reverse("admin:batchjobs_jobrun_live"),
        inner,
    )


def table(rows: list[tuple[str, Any]]) -> SafeString:
    """A small two-column table (name, value); values are escaped."""
    if not rows:
        return mark_safe("-")
    body = format_html_join("", "<tr><th>{}</th><td>{}</td></tr>", rows)
    return format_html('<table class="batchjobs-detail">{}</table>', body)


def plain(value: Any, *, group: bool = True) -> str:
    """A JSON value as one short line, for a cell (nested values joined, not dumped).
    ``group``: counts read better as 100,000; pids and chunk numbers do not."""
    if isinstance(value, dict):
        return ", ".join(f"{k}={plain(v, group=group)}" for k, v in value.items()) or "-"
    if isinstance(value, list):
        return ", ".join(plain(v, group=group) for v in value) or "-"
    if value is None or value == "":
        return "-"
    if group and isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return str(value)


_COLUMN_ORDER = ("by", "at", "host", "pid", "reason", "options", "attempt", "kind", "error")


def records(records: list[dict[str, Any]]) -> SafeString:
    """A table with one row per record (sessions, retries) and one column per key."""
    if not records:
        return mark_safe("-")
    # PostgreSQL's jsonb does not keep the order keys were stored in: a fixed one.
    keys = {k for r in records for k in r}
    columns = [k for k in _COLUMN_ORDER if k in keys] + sorted(keys - set(_COLUMN_ORDER))
    head = format_html_join("", "<th>{}</th>", ((c,) for c in columns))
    body = format_html_join(
        "",
        "<tr>{}</tr>",
        (
            (
                format_html_join(
                    "", "<td>{}</td>", ((plain(r.get(c), group=False),) for c in columns)
                ),
            )
            for r in records
        ),
    )
    return format_html(
        '<table class="batchjobs-detail"><thead><tr>{}</tr></thead><tbody>{}</tbody></table>',
        head,
        body,
    )
