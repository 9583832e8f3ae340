"""The test settings (``tests.settings``: the project's, plus the test app) with a short
retry budget, for the 'fails after the attempts are exhausted' fault tests (the defaults,
10 attempts with backoff up to 30 s, take minutes).

BATCHJOBS_* have no environment variables of their own, so a subprocess selects this
module with DJANGO_SETTINGS_MODULE=tests.faults.settings_few_attempts.
"""

from __future__ import annotations

from tests.settings import *  # noqa: F403

BATCHJOBS_MAX_ATTEMPTS = 3
BATCHJOBS_MAX_RETRY_WAIT_SECONDS = 0.5
