"""Project settings for the task workers of tests/faults/test_task_backends.py.

Tasks of one second (SCENARIO_TASK_MAX_SECONDS), so that every task hands over to a
successor mid-run; the short lease of settings_short_lease, so that a killed task's slice
is taken over within seconds; and the queue named by SCENARIO_TASK_QUEUE, so that a test
on a shared Redis has a queue of its own. A subprocess selects it with
DJANGO_SETTINGS_MODULE=tests.faults.settings_tasks.
"""

from __future__ import annotations

import os

from tests.faults.settings_short_lease import *  # noqa: F403
from tests.faults.settings_short_lease import RQ_QUEUES, TASKS

BATCHJOBS_TASK_MAX_SECONDS = float(os.environ.get("SCENARIO_TASK_MAX_SECONDS", "1.0"))
BATCHJOBS_TASK_QUEUE = os.environ.get("SCENARIO_TASK_QUEUE", "batchjobs")
TASKS = {"default": {**TASKS["default"], "QUEUES": ["default", BATCHJOBS_TASK_QUEUE]}}
if RQ_QUEUES:
    RQ_QUEUES = {q: RQ_QUEUES["default"] for q in TASKS["default"]["QUEUES"]}
