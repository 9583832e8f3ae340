"""The task that works on a sliced run, for Django's Tasks framework.

A run split into slices is shared by worker processes; here a worker is a task, run by
whatever runs the project's tasks (``db_worker``, ``rqworker``). One task works for at most
``BATCHJOBS_TASK_MAX_SECONDS`` (five minutes by default), then enqueues its successor with
the same arguments and returns: no task holds a worker process for hours, a deploy that
restarts the workers loses at most the chunk in flight, and a backend's own time limit is
never reached. A task killed outright (kill -9, a lost host) enqueues nothing; its slice
goes stale and the run's other tasks take it over (the lease, ``BATCHJOBS_STALE_AFTER_SECONDS``).

The arguments are JSON (job name, run id, the job's ``runjob`` options as strings, seconds),
as every backend stores them.

Signals: in the main thread (``db_worker``, RQ's work horse) the worker's stopper takes
SIGINT/SIGTERM/SIGHUP while the task works, as ``runjob`` does, so the chunk in flight
commits before the task stops. The signal was meant for the worker process, though: once
the task is done it is passed on to the handler the process had (``db_worker`` then exits
instead of taking the next task). The task may also run in a thread that is not the main
one (the immediate backend from a threaded server, thread-pool workers): no handler can be
installed there, so such a task stops at its time limit or when its run ends, and a signal
reaches the process as if no task ran.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from batchjobs import conf
from batchjobs.enqueue import enqueue
from batchjobs.stopping import Stopper
from batchjobs.worker import work

# Django 6 has the framework built in; before it, the backport (django-tasks) is it. A backend
# accepts only its framework's tasks (django-tasks-db checks), so the task is made with the
# framework the backends are, on each Django.
if TYPE_CHECKING or importlib.util.find_spec("django.tasks"):
    from django.tasks import TaskContext, task
else:
    from django_tasks import TaskContext, task

__all__ = ["work_on_run"]


# On batchjobs' own queue from the start: a backend whose QUEUES lists only that queue (not
# "default") must accept the task as it is defined, whenever this module is first imported.
@task(takes_context=True, queue_name=conf.get().TASK_QUEUE)
def work_on_run(
    context: TaskContext[Any, Any],
    job_name: str,
    run_id: int,
    argv: Sequence[str] = (),
    max_seconds: float | None = None,
) -> dict[str, Any]:
    """Work on run ``run_id`` of ``job_name`` for at most ``max_seconds`` (None: the worker's
    ``BATCHJOBS_TASK_MAX_SECONDS``); when the run still has work, enqueue the successor.

    The successor is this task again, with the same arguments, on the same backend and queue
    (``context``), so it runs wherever this one was meant to. The return value, kept by the
    backends that keep results, says what this task did.
    """
    limit = conf.get().TASK_MAX_SECONDS if max_seconds is None else max_seconds
    stopper = Stopper()
    successor: str | None = None
    try:
        result = work(job_name, run_id, argv=tuple(argv), max_seconds=limit, stopper=stopper)
        if result.more:
            # Redis down now: TaskQueueUnavailable, the task's error, says how to go on.
            successor = enqueue(context.task_result.task, job_name, run_id, list(argv), max_seconds)
    finally:
        stopper.pass_on()  # the signal was for the worker process: it goes on to it
    return {
        "run_id": result.run_id,
        "state": result.state,
        "more": result.more,
        "message": result.message,
        "successor": successor,
        "signal": stopper.signal_name,
    }
