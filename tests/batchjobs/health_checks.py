"""The library's own health checks, configured as a deployment would configure them, for
the run tests of test_health.py to name in ``BATCHJOBS_HEALTH_CHECKS``.

Nothing here is a stand-in: each is a real check running real SQL on the run's connection;
only where the lag reading comes from is the test's choice.
"""

from __future__ import annotations

from batchjobs.health import LockWaits, ReplicationLag

# A queue of lag readings the test fills: one row per reading, oldest first.
LAG_READINGS = "health_test_lag_readings"

# Each time the check asks, it takes the oldest reading off the queue; once the queue is
# empty it reads NULL, which is no lag. So a run sees exactly the readings the test queued,
# then a healthy replica: bounded without the test reaching into the run.
lagging_replica = ReplicationLag(
    max_lag_seconds=10.0,
    wait_seconds=5.0,
    query=(
        f"WITH reading AS (DELETE FROM {LAG_READINGS} "
        f"WHERE id = (SELECT min(id) FROM {LAG_READINGS}) RETURNING seconds) "
        "SELECT max(seconds) FROM reading"
    ),
)

# Short waits so a run under lock contention looks again soon after the contention ends.
lock_contention = LockWaits(min_wait_seconds=0.2, wait_seconds=0.25)
