"""A testing kit for job authors: run a job to the end in this process, or interrupt it
after some chunks or at a key and resume it, then check that every row was processed
exactly once.

Nothing is faked: ``run_job`` runs the real ``Runner`` on the real database, and stops a
run the way SIGTERM does (``Stopper.request``, honoured at the next chunk boundary), so
the second ``run_job`` resumes it from its checkpoint as ``runjob`` would. ``Recorder``
counts a chunk's keys only when the chunk's transaction COMMITS (``on_commit``): a chunk
rolled back and retried, or bisected around a failing row, counts once, as the database
saw it.

Use it as a pytest plugin (``pytest_plugins = ["batchjobs.testing"]`` in the top
``conftest.py``) for the ``job_runner`` fixture, or call ``run_job`` in a test marked
``django_db(transaction=True)``: each chunk commits on its own, which a test wrapped in one
transaction cannot show.
"""

from __future__ import annotations

import json
import signal
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any

import pytest
from django.db import router, transaction
from django.db.models import Model, QuerySet
from structlog.testing import capture_logs

from batchjobs.job import ResumableJob
from batchjobs.options import RunOptions
from batchjobs.stopping import Stopper

if TYPE_CHECKING:
    from batchjobs.chunk import Chunk
    from batchjobs.effects import Delivery
    from batchjobs.ending import Outcome
    from batchjobs.models import JobRun

__all__ = [
    "JobRunner",
    "KitRun",
    "Recorder",
    "assert_each_row_once",
    "assert_effects_delivered",
    "job_runner",
    "run_job",
]

_SHOWN = 10  # keys named in a failed assertion, at most


class Recorder:
    """How many times each key was processed by a chunk that committed, across runs."""

    def __init__(self) -> None:
        self.counts: Counter[Any] = Counter()
        self.key = "pk"  # the job's key, learnt from the job watched
        self.chunks = 0  # chunks committed
        # Outside effects whose deliver() returned, by effect key (as JSON), and the
        # idempotency keys each was delivered under.
        self.deliveries: Counter[str] = Counter()
        self.delivered_as: dict[str, set[str]] = {}

    @contextmanager
    def watching(
        self, job: ResumableJob, *, after_commit: Callable[[Chunk], None] | None = None
    ) -> Iterator[None]:
        """Wrap ``job.process`` on this instance for the duration: each call registers,
        on the chunk's transaction, a count of its keys (and ``after_commit``) to run if it
        commits. A job whose ``process`` is not called (``--sql-side``) is not seen."""
        self.key = job.key
        with ExitStack() as unwrap:
            self._watch(job, after_commit, unwrap)
            yield

    def _watch(
        self,
        job: ResumableJob,
        after_commit: Callable[[Chunk], None] | None,
        unwrap: ExitStack,
    ) -> None:
        process, for_run = job.process, job.for_run

        def recorded(chunk: Chunk) -> int | None:
            changed = process(chunk)
            alias = router.db_for_write(chunk.model)
            transaction.on_commit(partial(self._committed, chunk, after_commit), using=alias)
            return changed

        def rebuilt(stored: Mapping[str, Any], run_id: int) -> ResumableJob:
            # A resume runs a job rebuilt from the run's stored parameters: watch it too.
            used = for_run(stored, run_id)
            if used is not job:
                self._watch(used, after_commit, unwrap)
            return used

        vars(job).update(process=recorded, for_run=rebuilt)
        unwrap.callback(vars(job).pop, "for_run")
        unwrap.callback(vars(job).pop, "process")
        if job.has_effects():
            deliver = job.deliver

            def delivered(delivery: Delivery) -> None:
                deliver(delivery)  # counted once the receiver has it: deliver() returned
                named = _as_json(delivery.key)
                self.deliveries[named] += 1
                self.delivered_as.setdefault(named, set()).add(delivery.idempotency_key)

            vars(job)["deliver"] = delivered
            unwrap.callback(vars(job).pop, "deliver")

    def _committed(self, chunk: Chunk, then: Callable[[Chunk], None] | None) -> None:
        self.counts.update(chunk.keys)
        self.chunks += 1
        if then is not None:
            then(chunk)


@dataclass(frozen=True)
class KitRun:
    """What one ``run_job`` did: the outcome ``runjob`` would report (``exit_code``,
    ``state``, ``message``), the run row as it was left, and the events it emitted (as
    structlog event dicts; the kit captures them, so an enclosing ``capture_logs`` sees
    none)."""

    outcome: Outcome
    run: JobRun
    events: list[dict[str, Any]]

    @property
    def event_names(self) -> list[str]:
        """The events in order, without ``job.progress`` (whose number depends on timing)."""
        return [e["event"] for e in self.events if e["event"] != "job.progress"]


def run_job(
    job: ResumableJob | type[ResumableJob],
    params: Mapping[str, Any] | None = None,
    *,
    options: RunOptions | None = None,
    stop_after_chunks: int | None = None,
    stop_at_key: Any = None,
    recorder: Recorder | None = None,
) -> KitRun:
    """Run ``job`` in this process until its rows run out or the stop asked for.

    A class is instantiated as ``job(**params)`` (``job()`` without params), as ``runjob``
    does, a fresh instance per call like a fresh process. ``stop_after_chunks=n`` stops the
    run after its n-th committed chunk, ``stop_at_key=k`` after the first committed chunk
    whose last key is ``k`` or beyond: in both cases as SIGTERM would, so the run is left
    ``interrupted`` (exit code 143) and the next call resumes it. A failing run raises as
    ``Runner.run`` does (``JobFailed``, ...).
    """
    from batchjobs.models import JobRun  # noqa: PLC0415 - models load with the app registry
    from batchjobs.runner import Runner  # noqa: PLC0415

    if isinstance(job, type):
        job = job(**params) if params is not None else job()
    elif params is not None:
        raise TypeError("params are for a job class; this job is constructed already")
    recorder = recorder if recorder is not None else Recorder()
    stopper = Stopper()
    chunks = 0

    def maybe_stop(chunk: Chunk) -> None:
        nonlocal chunks
        chunks += 1
        if (stop_after_chunks is not None and chunks >= stop_after_chunks) or (
            stop_at_key is not None and chunk.last >= stop_at_key
        ):
            stopper.request(signal.SIGTERM)  # what the handler does with a real SIGTERM

    with capture_logs() as logs, recorder.watching(job, after_commit=maybe_stop):
        outcome = Runner(job, options or RunOptions(), stopper=stopper).run()
    return KitRun(
        outcome=outcome, run=JobRun.objects.get(pk=outcome.run_id), events=[dict(e) for e in logs]
    )


def assert_each_row_once(recorder: Recorder, rows: QuerySet[Model] | Iterable[Any]) -> None:
    """Every row of ``rows`` (a queryset, or its keys) was processed by exactly one
    committed chunk, and no other row was: else an ``AssertionError`` naming the keys
    skipped, repeated and unexpected."""
    keys = rows.values_list(recorder.key, flat=True) if isinstance(rows, QuerySet) else rows
    expected = set(keys)
    repeated = {k: n for k, n in sorted(recorder.counts.items()) if k in expected and n > 1}
    _verdict(
        f"Not every row was processed exactly once, of {len(expected)}",
        never=("never processed", "keys ", sorted(k for k in expected if recorder.counts[k] == 0)),
        twice=("processed more than once", "{key: times} ", repeated),
        other=(
            "processed but not expected",
            "keys ",
            sorted(k for k in recorder.counts if k not in expected),
        ),
    )


def assert_effects_delivered(recorder: Recorder, keys: Iterable[Any]) -> None:
    """The outside effect of every key of ``keys`` was delivered at least once (the job's
    ``deliver()`` returned), every delivery of one effect carried the same idempotency key,
    and no other effect was delivered: else an ``AssertionError`` naming them. Delivered
    more than once is allowed (at least once), under one idempotency key."""
    expected = {_as_json(k) for k in keys}
    renamed = {k: sorted(ids) for k, ids in sorted(recorder.delivered_as.items()) if len(ids) > 1}
    _verdict(
        f"Not every effect was delivered, of {len(expected)}",
        never=(
            "never delivered",
            "keys ",
            sorted(k for k in expected if recorder.deliveries[k] == 0),
        ),
        twice=("delivered under several idempotency keys", "{key: keys} ", renamed),
        other=(
            "delivered but not expected",
            "keys ",
            sorted(k for k in recorder.deliveries if k not in expected),
        ),
    )


def _verdict(headline: str, **found: tuple[str, str, list[Any] | dict[Any, Any]]) -> None:
    """Raise ``AssertionError`` naming what was found (a few keys of each), if anything."""
    problems = []
    for what, label, keys in found.values():
        if keys:
            shown = dict(list(keys.items())[:_SHOWN]) if isinstance(keys, dict) else keys[:_SHOWN]
            problems.append(f"{len(keys)} {what} ({label}{shown})")
    if problems:
        raise AssertionError(f"{headline}: " + "; ".join(problems) + ".")


def _as_json(key: Any) -> str:
    # Effect keys are JSON values (a list is not hashable; 7 and "7" are two keys).
    return json.dumps(key, sort_keys=True, separators=(",", ":"))


class JobRunner:
    """The ``job_runner`` fixture: ``run_job`` with one ``Recorder`` for the whole test, so
    that a run and its resumption are checked together."""

    def __init__(self) -> None:
        self.recorder = Recorder()

    def run(
        self,
        job: ResumableJob | type[ResumableJob],
        params: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> KitRun:
        return run_job(job, params, recorder=self.recorder, **kwargs)

    def assert_each_row_once(self, rows: QuerySet[Model] | Iterable[Any]) -> None:
        assert_each_row_once(self.recorder, rows)

    def assert_effects_delivered(self, keys: Iterable[Any]) -> None:
        assert_effects_delivered(self.recorder, keys)


@pytest.fixture
def job_runner(transactional_db: None) -> JobRunner:
    """Runs jobs in this process on a transactional test database (each chunk commits)."""
    return JobRunner()
