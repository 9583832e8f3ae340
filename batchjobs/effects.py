"""``Delivery``: one outside effect as a job's ``deliver()`` is handed it, and the
idempotency key that names it. Pure: the outbox that stores effects is ``batchjobs.outbox``,
the loop that delivers them ``batchjobs.delivery``."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Delivery:
    """One effect, as the job's ``deliver()`` sees it."""

    run_id: int
    key: Any
    payload: Any
    # 1 on the first try; more after failures, in this process or an earlier one.
    attempt: int

    @property
    def idempotency_key(self) -> str:
        """The same for every delivery of this effect, different for any other: the run
        and the key. A receiver that remembers it does the effect once."""
        return idempotency_key(self.run_id, self.key)


def idempotency_key(run_id: int, key: Any) -> str:
    """``"41:1234"``: the run's id and the key as JSON (so 7 and "7" differ)."""
    return f"{run_id}:{json.dumps(key, sort_keys=True, separators=(',', ':'))}"
