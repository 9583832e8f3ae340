"""Calling a job's lifecycle hooks (``on_start``, ``on_complete``, ``on_interrupt``,
``on_error``) so that they cannot harm the run.

A hook is the job author's code running at a moment the library owns: after the run's
state is recorded and outside any chunk transaction. Whatever it raises is reported as
``job.hook_failed`` and swallowed, so the state, the checkpoint and the exit code stay
what the run made them; a second stop signal that cuts a hook short is reported the same
way (the run has been recorded already).
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Any

from batchjobs import events, retry
from batchjobs.job import Interruption, ResumableJob, RunInfo
from batchjobs.stopping import ForcedStop

if TYPE_CHECKING:
    from structlog.stdlib import BoundLogger

    from batchjobs.models import JobRun


def run_info(run: JobRun, *, job: str, high_water_mark: Any) -> RunInfo:
    """What the hooks are told of ``run`` as claimed (``high_water_mark`` decoded)."""
    # The column is nullable, but store.create sets it on every run it makes.
    assert run.started_at is not None, f"run #{run.pk} has no started_at"
    return RunInfo(
        run_id=run.pk,
        started_at=run.started_at,
        high_water_mark=high_water_mark,
        job=job,
        state=str(run.state),
        done=run.done,
        total=run.total,
        resumed=run.chunks > 0 or run.done > 0,
    )


class Hooks:
    """The job's hooks for one worker's session on one run. ``run`` is the run as claimed;
    each call is given it with the state and counts of the moment."""

    def __init__(self, *, job: ResumableJob, run: RunInfo, log: BoundLogger) -> None:
        self.job = job
        self.run = run
        self.log = log

    def started(self) -> None:
        self._call("on_start", self.run)

    def completed(self, *, state: str, done: int, total: int | None) -> None:
        self._call("on_complete", self._now(state, done, total))

    def interrupted(
        self, reason: Interruption, *, state: str, done: int, total: int | None
    ) -> None:
        self._call("on_interrupt", self._now(state, done, total), reason)

    def failed(self, error: BaseException, *, done: int, total: int | None) -> None:
        self._call("on_error", self._now("failed", done, total), error)

    def _now(self, state: str, done: int, total: int | None) -> RunInfo:
        return replace(self.run, state=state, done=done, total=total)

    def _call(self, hook: str, *args: Any) -> None:
        try:
            getattr(self.job, hook)(*args)
        except (Exception, ForcedStop) as exc:
            error_class, error = retry.describe(exc)
            self.log.error(events.HOOK_FAILED, hook=hook, error_class=error_class, error=error)
