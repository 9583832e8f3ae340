"""The outbox: a job's outside effects, recorded in the chunk's own transaction and
delivered after its COMMIT (``batchjobs.delivery``). The only code that writes ``Effect``
rows.

Recorded with the chunk, an effect exists exactly when the chunk's writes and checkpoint
do: a crash before the COMMIT leaves neither, a crash after it leaves the effect owed, and a
rehearsal (rolled back, with no run) records none.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.db.models import Count, F, Q, QuerySet
from django.utils import timezone

from batchjobs.models import Effect

# Effects read per query while delivering; each is delivered and recorded one at a time.
_BATCH = 100


class Outbox:
    """The effects one run owes (recorded, not yet delivered), as the process that owns
    the run sees them. Only the run that recorded an effect delivers it, with its own job
    instance (its parameters: a webhook's URL): a run cancelled or abandoned with effects
    owed gives them up, and listjobs shows them as owed."""

    def __init__(self, *, alias: str, run_id: int) -> None:
        self.alias = alias
        self.run_id = run_id

    def record(self, effects: Sequence[tuple[Any, Any]]) -> None:
        """Inside the chunk's transaction (the run row locked, fenced on the lease): owe
        ``effects``. A key this run owes already (a row processed again in a verification
        re-sweep) stays one effect."""
        if effects:
            Effect.objects.using(self.alias).bulk_create(
                [Effect(run_id=self.run_id, key=key, payload=payload) for key, payload in effects],
                ignore_conflicts=True,
            )

    def _owed(self) -> QuerySet[Effect]:
        return Effect.objects.using(self.alias).filter(
            run_id=self.run_id, delivered_at__isnull=True
        )

    def owed(self) -> list[Effect]:
        """The oldest effects owed, at most a batch of them."""
        return list(self._owed().order_by("id")[:_BATCH])

    def owed_count(self) -> int:
        return self._owed().count()

    def delivered(self, effect_id: int, *, attempt: int) -> None:
        """The receiver has it. Not fenced on the lease: whoever did it, it is done."""
        Effect.objects.using(self.alias).filter(pk=effect_id).update(
            delivered_at=timezone.now(), attempts=attempt, last_error=""
        )

    def failed(self, effect_id: int, *, error: str) -> None:
        Effect.objects.using(self.alias).filter(pk=effect_id).update(
            attempts=F("attempts") + 1, last_error=error
        )


def tally(run_id: int, *, using: str = "default") -> dict[str, Any]:
    """What ``listjobs`` shows of a run's effects: how many delivered, how many owed, and
    the last error of the oldest one owed that failed (``None``: none did)."""
    effects = Effect.objects.using(using).filter(run_id=run_id)
    counts = effects.aggregate(
        delivered=Count("id", filter=Q(delivered_at__isnull=False)),
        owed=Count("id", filter=Q(delivered_at__isnull=True)),
    )
    failing = (
        effects.filter(delivered_at__isnull=True, attempts__gt=0)
        .order_by("id")
        .values("last_error", "attempts")
        .first()
    )
    return {**counts, "failing": failing}
