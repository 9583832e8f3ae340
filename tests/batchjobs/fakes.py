"""Small jobs and helpers for the in-process runner tests, over the test app's ``Item``.

The jobs register themselves when this module is imported (that is how jobs work); their
names start with ``fake_`` so they cannot clash with real ones.
"""

from __future__ import annotations

import sqlite3
import uuid
from collections import Counter
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import psycopg2
from django.db import connection
from django.db.models import QuerySet
from django.utils import timezone

from batchjobs import Chunk
from batchjobs.job import ResumableJob, RunInfo
from batchjobs.models import JobRun
from batchjobs.stopping import Stopper
from tests.testapp.jobs import RotateItemTokens
from tests.testapp.models import Item


class Crash(BaseException):
    """Stands for the process dying mid-chunk: nothing in the runner catches it."""


Hook = Callable[["RecordingRotation", Chunk], None]


class RecordingRotation(RotateItemTokens):
    """The test app's rotation, plus a record of the keys of every ``process`` call that
    returned, and a hook that runs at the start of each call (it may raise)."""

    name = "fake_recording_rotation"

    def __init__(
        self,
        *,
        queryset: Callable[[], QuerySet[Item]] | None = None,
        before: Hook | None = None,
    ) -> None:
        self.chunks: list[list[Any]] = []
        self.calls = 0
        self._queryset = queryset
        self._before = before

    def get_queryset(self) -> QuerySet[Item]:
        return self._queryset() if self._queryset else super().get_queryset()

    def process(self, chunk: Chunk) -> int:
        self.calls += 1
        if self._before:
            self._before(self, chunk)
        changed = super().process(chunk)
        self.chunks.append(list(chunk.keys))
        return changed

    def pending(self, run: RunInfo) -> QuerySet[Item]:
        # The rotation's check, kept to this job's rows.
        return self.get_queryset().filter(
            pk__lte=run.high_water_mark, token_issued_at__lt=run.started_at
        )

    @property
    def processed(self) -> Counter[Any]:
        return Counter(key for keys in self.chunks for key in keys)


class UnverifiedRotation(RecordingRotation):
    """The same, with no verification pass (``pending`` says it cannot tell)."""

    name = "fake_unverified_rotation"

    def pending(self, run: RunInfo) -> None:  # type: ignore[override]
        return None


class CloseByToken(ResumableJob):
    """Seeks over a non-integer key: the item's unique UUID token. Closes each item."""

    name = "fake_close_by_token"
    description = "Close every item, walking the table in token order."
    key = "token"

    def __init__(self, *, before: Callable[[CloseByToken, Chunk], None] | None = None) -> None:
        self.chunks: list[list[Any]] = []
        self.calls = 0
        self._before = before

    def get_queryset(self) -> QuerySet[Item]:
        return Item.objects.all()

    def process(self, chunk: Chunk) -> int:
        self.calls += 1
        if self._before:
            self._before(self, chunk)
        changed = chunk.update(status=Item.Status.CLOSED)
        self.chunks.append(list(chunk.keys))
        return changed


class NeverSettles(RotateItemTokens):
    """Its verification always finds rows that its ``process`` cannot fix."""

    name = "fake_never_settles"
    description = "A job whose verification pass keeps finding work."

    def pending(self, run: RunInfo) -> QuerySet[Item]:
        return Item.objects.filter(pk__lte=run.high_water_mark, title__startswith="stuck")


def tokens() -> dict[int, uuid.UUID]:
    return dict(Item.objects.values_list("id", "token"))


def kill_owner(run_id: int) -> None:
    """Make a run look like its process died: its heartbeat is a day old."""
    JobRun.objects.filter(pk=run_id).update(heartbeat_at=timezone.now() - timedelta(days=1))


class InstantTime:
    """A clock that only moves when something sleeps on it: backoff costs no wall time."""

    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += max(0.0, seconds)


class InstantStopper(Stopper):
    def __init__(self, clock: InstantTime) -> None:
        super().__init__()
        self.clock = clock

    def sleep(self, seconds: float) -> None:
        self.clock.sleep(seconds)


class Contention:
    """Another database session in the way, so that the job's statement fails for real.

    PostgreSQL: another session holds a row lock and the job asks for it with NOWAIT
    (SQLSTATE 55P03). SQLite: while the runner's chunk holds the write lock, a second
    connection asks for it with no timeout ("database is locked").
    """

    def __init__(self) -> None:
        self._holder: Any = None

    def hold(self, pk: int) -> None:
        if connection.vendor != "postgresql":
            return
        self._holder = psycopg2.connect(**connection.get_connection_params())
        with self._holder.cursor() as cursor:
            table = connection.ops.quote_name(Item._meta.db_table)
            cursor.execute(f"SELECT 1 FROM {table} WHERE id = %s FOR UPDATE", [pk])

    def collide(self, pk: int) -> None:
        if connection.vendor == "postgresql":
            list(Item.objects.select_for_update(nowait=True).filter(pk=pk))
            return
        other = sqlite3.connect(connection.settings_dict["NAME"], timeout=0)
        try:
            with connection.wrap_database_errors:
                other.execute("BEGIN IMMEDIATE")
        finally:
            other.close()

    def release(self) -> None:
        if self._holder is not None:
            self._holder.close()
            self._holder = None


class CollidingRotation(RotateItemTokens):
    """Gives every row of a chunk the same token: a uniqueness collision."""

    name = "fake_colliding_rotation"
    description = "A rotation whose new tokens collide."

    def process(self, chunk: Chunk) -> int:
        return chunk.update(token=uuid.UUID("00000000-0000-4000-8000-000000000000"))
