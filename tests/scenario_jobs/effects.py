"""A job with outside effects, over the test app's items: each chunk rotates its rows and
records one effect per row; ``deliver`` posts it to the test's receiver
(``tests.support.receiver``) at SCENARIO_RECEIVER_URL. SCENARIO_CHUNK_SLEEP slows chunks
down, so a test can stop or kill a run in the middle."""

from __future__ import annotations

import os
import time

from batchjobs import Chunk, Delivery
from jobs.post_closed_tickets import post_json
from tests.testapp.jobs import RotateItemTokens


class NotifyingItems(RotateItemTokens):
    name = "scenario_effects"
    description = "Rotate item tokens and post one outside effect per item (tests)."

    def process(self, chunk: Chunk) -> int:
        changed = self.rotate(chunk)
        for key in chunk.keys:
            chunk.effect(key, {"item": key})
        time.sleep(float(os.environ.get("SCENARIO_CHUNK_SLEEP", "0")))
        return changed

    def deliver(self, delivery: Delivery) -> None:
        post_json(
            os.environ["SCENARIO_RECEIVER_URL"],
            delivery.payload,
            idempotency_key=delivery.idempotency_key,
            timeout=5,
        )
