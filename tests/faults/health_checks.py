"""A health check a test can switch on and off from outside the runner process: it
objects while the file named by SCENARIO_THROTTLE_FILE exists, asking for waits of
SCENARIO_THROTTLE_WAIT seconds (1 by default). Selected by settings_throttled.py."""

from __future__ import annotations

import os
from typing import Any

from batchjobs.health import Verdict


def file_switch(connection: Any) -> Verdict | None:
    flag = os.environ.get("SCENARIO_THROTTLE_FILE", "")
    if flag and os.path.exists(flag):
        wait = float(os.environ.get("SCENARIO_THROTTLE_WAIT", "1"))
        return Verdict("the test's switch is on", wait)
    return None
