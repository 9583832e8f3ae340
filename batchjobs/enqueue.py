"""Hand a sliced run to Django's Tasks framework: N tasks that are its workers.

``runjob NAME --enqueue --workers N`` creates (or continues) the sliced run, then calls
``enqueue_workers``, which enqueues ``work_on_run`` N times on ``BATCHJOBS_TASK_QUEUE`` and says,
in one sentence, where the tasks went, how to start the processes that run them and how to
follow the run. A backend that cannot take them (Redis down, a queue TASKS does not list)
is one ``BatchJobError`` sentence, with how many tasks were enqueued before it.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from batchjobs import conf
from batchjobs.exceptions import TaskQueueUnavailable, TasksMisconfigured

if TYPE_CHECKING:
    from django.tasks import Task
    from django.tasks.backends.base import BaseTaskBackend
    from django.tasks.exceptions import InvalidTask, InvalidTaskBackend
elif importlib.util.find_spec("django.tasks"):
    from django.tasks.exceptions import InvalidTask, InvalidTaskBackend
else:
    from django_tasks.exceptions import InvalidTaskBackendError as InvalidTaskBackend
    from django_tasks.exceptions import InvalidTaskError as InvalidTask

__all__ = ["backend_name", "enqueue_workers", "worker_command"]


def enqueue_workers(
    *,
    job_name: str,
    run_id: int,
    workers: int,
    argv: Sequence[str],
    max_seconds: float | None = None,
) -> str:
    """Enqueue ``workers`` tasks working on run ``run_id`` of ``job_name``; the operator's
    sentence. ``argv``: the job's ``runjob`` options (its parameters, --sql-side, ...), as the
    tasks will parse them; ``max_seconds``: each task's time before it hands over to its
    successor (None: the worker's ``BATCHJOBS_TASK_MAX_SECONDS``)."""
    settings = conf.get()
    try:
        task = _work_on_run().using(queue_name=settings.TASK_QUEUE)
    except (InvalidTask, InvalidTaskBackend) as error:
        raise TasksMisconfigured(_misconfigured(error, settings.TASK_QUEUE)) from None
    backend = task.get_backend()
    for enqueued in range(workers):
        enqueue(task, job_name, run_id, list(argv), max_seconds, done=enqueued, of=workers)
    name = backend_name(backend)
    tasks = "task" if workers == 1 else "tasks"
    where = f"on the {name} backend (queue {settings.TASK_QUEUE})"
    follow = f"follow it with: python manage.py listjobs {job_name} --follow"
    if name == "immediate":
        ran = f"Ran {workers} {tasks} for run #{run_id} of {job_name} {where}, in this process"
        return f"{ran}; {follow}."
    return (
        f"Enqueued {workers} {tasks} for run #{run_id} of {job_name} {where}; start workers "
        f"with: {worker_command(backend, settings.TASK_QUEUE)}; {follow}."
    )


def enqueue(
    task: Task[Any, Any],
    job_name: str,
    run_id: int,
    argv: list[str],
    max_seconds: float | None,
    *,
    done: int = 0,
    of: int = 1,
) -> str:
    """Enqueue one worker task; its id. An unreachable backend is ``TaskQueueUnavailable``,
    saying how many of ``of`` tasks (``done``) were enqueued before it."""
    try:
        return str(task.enqueue(job_name, run_id, argv, max_seconds).id)
    except (InvalidTask, InvalidTaskBackend) as error:
        raise TasksMisconfigured(_misconfigured(error, task.queue_name)) from None
    except Exception as error:
        if not _unreachable(error):
            raise
        backend = backend_name(task.get_backend())
        raise TaskQueueUnavailable(
            f"The {backend} task backend cannot be reached ({type(error).__name__}: "
            f"{_first_line(error)}); {done} of {of} tasks for run #{run_id} of {job_name} were "
            f"enqueued. Start it, then run: python manage.py runjob {job_name} --enqueue "
            f"--workers {of - done}."
        ) from error


def backend_name(backend: BaseTaskBackend) -> str:
    """``database``, ``rq`` or ``immediate`` (BATCHJOBS_TASKS_BACKEND's names), else the
    backend's class name."""
    module = type(backend).__module__
    if module.startswith("django_tasks_db"):
        return "database"
    if module.startswith("django_tasks_rq"):
        return "rq"
    if type(backend).__name__ == "ImmediateBackend":
        return "immediate"
    return type(backend).__name__


def worker_command(backend: BaseTaskBackend, queue: str) -> str:
    """The command that starts a process running ``queue``'s tasks on ``backend``."""
    alias = "" if backend.alias == "default" else f" --backend {backend.alias}"
    name = backend_name(backend)
    if name == "database":
        return f"python manage.py db_worker --queue-name {queue}{alias}"
    if name == "rq":
        return f"python manage.py rqworker {queue} --job-class django_tasks_rq.Job"
    return f"the worker of {type(backend).__module__}.{type(backend).__name__} on queue {queue}"


def _work_on_run() -> Task[Any, Any]:
    # Imported here: the task's module asks for the configured backend when it is loaded.
    from batchjobs.tasks import work_on_run  # noqa: PLC0415

    return work_on_run


def _misconfigured(error: Exception, queue: str) -> str:
    return (
        f"Django's Tasks framework cannot take batchjobs' tasks: {_first_line(error)} "
        f"(TASKS must list the queue {queue!r}, BATCHJOBS_TASK_QUEUE, in its QUEUES)."
    )


def _unreachable(error: BaseException) -> bool:
    """A connection refused, reset or timed out: the backend's server is not there. (Redis's
    errors are not OSError. The database backend's are the database's, which the commands
    already explain.)"""
    if isinstance(error, OSError):
        return True
    names = {cls.__module__.split(".")[0] + "." + cls.__name__ for cls in type(error).__mro__}
    return bool(names & {"redis.ConnectionError", "redis.TimeoutError"})


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
