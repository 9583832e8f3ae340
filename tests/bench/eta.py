"""How good the ETA was: the arithmetic of ``--eta-under-load``. Pure: no database, no
processes.

A run's ``job.progress`` events each say (elapsed, done, eta, low, high). Once the run has
ended, the time that actually remained at an event is the elapsed time of the last event
(the last row done) less the event's own. At the events nearest 25% and 50% done, the ETA
is held to a goal (within 10% and 5% of the truth) and the truth to the range.

One run is one sample of a noisy process (the machine's other load comes and goes), so
``--repeat`` runs it several times; the summary counts the runs that met each goal.
"""

from __future__ import annotations

import statistics
from dataclasses import asdict, dataclass, field
from typing import Any

# At this share of the rows done, the ETA must be within this much of the truth.
GOALS = ((0.25, 0.10), (0.50, 0.05))


@dataclass(frozen=True)
class Point:
    elapsed: float
    done: int
    eta: float | None
    low: float | None
    high: float | None

    @classmethod
    def from_event(cls, event: dict[str, Any]) -> Point:
        return cls(
            float(event["elapsed_seconds"]),
            int(event["done"]),
            event.get("eta_seconds"),
            event.get("eta_low_seconds"),
            event.get("eta_high_seconds"),
        )


@dataclass(frozen=True)
class Check:
    target: float  # 0.25: the event nearest 25% done
    tolerance: float
    point: Point
    percent: float
    truth: float  # seconds that actually remained

    @property
    def error(self) -> float | None:
        """(eta - truth) / truth: positive when the ETA said longer than it took."""
        if self.point.eta is None or self.truth <= 0:
            return None
        return (self.point.eta - self.truth) / self.truth

    @property
    def within(self) -> bool:
        return self.error is not None and abs(self.error) <= self.tolerance

    @property
    def in_range(self) -> bool:
        low, high = self.point.low, self.point.high
        return low is not None and high is not None and low <= self.truth <= high


@dataclass
class EtaResult:
    rows: int
    load: str  # the live load, as a sentence
    points: list[Point] = field(default_factory=list)
    finished_seconds: float | None = None  # job.finished's duration (verification included)
    # What else the machine did: load average before and after, share of CPU time busy.
    load_before: str = ""
    load_after: str = ""
    cpu_busy: float | None = None
    checkpoints: int | None = None  # started by the server during the run, cluster-wide

    def checks(self) -> list[Check]:
        if not self.points or not self.rows:
            return []
        end = self.points[-1].elapsed
        out = []
        for target, tolerance in GOALS:
            point = min(self.points, key=lambda p: abs(p.done / self.rows - target))
            out.append(
                Check(target, tolerance, point, 100 * point.done / self.rows, end - point.elapsed)
            )
        return out

    def as_dict(self) -> dict[str, Any]:
        return {
            "rows": self.rows,
            "load": self.load,
            "finished_seconds": self.finished_seconds,
            "load_before": self.load_before,
            "load_after": self.load_after,
            "cpu_busy": self.cpu_busy,
            "checkpoints": self.checkpoints,
            "points": [asdict(p) for p in self.points],
            "checks": [
                {**asdict(c), "error": c.error, "within": c.within, "in_range": c.in_range}
                for c in self.checks()
            ],
        }


def _seconds(value: float | None) -> str:
    return "null" if value is None else f"{value:.1f}"


def format_eta(result: EtaResult) -> str:
    lines = [
        f"ETA under load: runjob on {result.rows:,} rows while {result.load}.",
        "",
        "at     done %  elapsed s  eta s  low s  high s  truth s  error   in range",
    ]
    checks = result.checks()
    for c in checks:
        error = "n/a" if c.error is None else f"{100 * c.error:+.1f}%"
        lines.append(
            f"{100 * c.target:>3.0f}%  {c.percent:7.1f}  {c.point.elapsed:9.1f}  "
            f"{_seconds(c.point.eta):>5}  {_seconds(c.point.low):>5}  "
            f"{_seconds(c.point.high):>6}  {c.truth:7.1f}  {error:>6}  "
            f"{'yes' if c.in_range else 'no'}"
        )
    if result.points:
        last = result.points[-1]
        finished = (
            ""
            if result.finished_seconds is None
            else f"; job.finished after {result.finished_seconds:.1f} s (verification included)"
        )
        lines.append(
            f"{len(result.points)} job.progress events; last row done at {last.elapsed:.1f} s"
            f"{finished}."
        )
    if result.load_before:
        busy = "" if result.cpu_busy is None else f"; CPU busy {100 * result.cpu_busy:.0f}%"
        n = result.checkpoints
        started = "" if n is None else f"; {n} checkpoint{'' if n == 1 else 's'} started"
        lines.append(
            f"Machine: 1-min load average {result.load_before} before, {result.load_after} after"
            f"{busy}{started} during the run."
        )
    lines.append("")
    for c in checks:
        at = f"{100 * c.target:.0f}%"
        error = "no estimate" if c.error is None else f"{100 * abs(c.error):.1f}%"
        lines.append(
            f"  {'PASS' if c.within else 'MISS'}  eta_seconds at {at} within "
            f"{100 * c.tolerance:.0f}% of the time left: {error}"
        )
        lines.append(
            f"  {'PASS' if c.in_range else 'MISS'}  the time left at {at} inside "
            f"[eta_low, eta_high]: {c.truth:.1f} in [{_seconds(c.point.low)}, "
            f"{_seconds(c.point.high)}]"
        )
    return "\n".join(lines)


def format_eta_runs(results: list[EtaResult]) -> str:
    """Every run's table; with more than one run, how many met each goal."""
    parts = [format_eta(r) for r in results]
    if len(results) < 2:
        return "\n\n".join(parts)
    lines = [f"ETA under load, {len(results)} runs:"]
    for k, (target, tolerance) in enumerate(GOALS):
        at = f"{100 * target:.0f}%"
        checks = [r.checks()[k] for r in results if len(r.checks()) > k]
        errors = [abs(c.error) for c in checks if c.error is not None]
        median = "n/a" if not errors else f"{100 * statistics.median(errors):.1f}%"
        signed = ", ".join("n/a" if c.error is None else f"{100 * c.error:+.1f}%" for c in checks)
        lines.append(
            f"  eta_seconds at {at} within {100 * tolerance:.0f}%: "
            f"{sum(c.within for c in checks)} of {len(checks)} runs "
            f"(errors {signed}; median |error| {median})"
        )
        lines.append(
            f"  the time left at {at} inside [eta_low, eta_high]: "
            f"{sum(c.in_range for c in checks)} of {len(checks)} runs"
        )
    return "\n\n".join([*parts, "\n".join(lines)])
