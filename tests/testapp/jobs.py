"""The test app's job, found by discovery (the ``jobs`` module of an installed app) in every
process that installs the test app: pytest's and the ``manage.py`` processes the tests
start. It is the library's tests' stand-in for a shipped job: it rewrites a secret column
the way a real one would, one statement per chunk through ``Chunk.update``."""

from __future__ import annotations

import uuid
from typing import Any

from django.db.models import QuerySet
from django.db.models.functions import Now

from batchjobs import Chunk, Param, ResumableJob, RunInfo
from tests.testapp.models import Item


class RotateItemTokens(ResumableJob):
    name = "rotate_item_tokens"
    description = "Give every item a fresh random token (the library's tests' job)."

    def get_queryset(self) -> QuerySet[Item]:
        return Item.objects.all()

    def process(self, chunk: Chunk) -> int:
        return self.rotate(chunk)

    def rotate(self, chunk: Chunk) -> int:
        """New tokens for the chunk's rows, and only that: other columns stay as they are."""
        return chunk.update(token=[uuid.uuid4() for _ in range(len(chunk))], token_issued_at=Now())

    def sql_values(self, connection: Any) -> dict[str, Any] | None:
        if connection.vendor != "postgresql":
            return None
        from django.contrib.postgres.functions import RandomUUID  # noqa: PLC0415

        return {"token": RandomUUID(), "token_issued_at": Now()}

    def pending(self, run: RunInfo) -> QuerySet[Item]:
        # A row present at the start whose token was issued before the run began.
        return Item.objects.filter(pk__lte=run.high_water_mark, token_issued_at__lt=run.started_at)


class TagItems(ResumableJob):
    """The library's tests' job with parameters, one of each kind: what ``runjob`` offers
    as options, stores with the run, and checks on a resume."""

    name = "tag_items"
    description = "Retitle the items in one status (the library's tests' job with parameters)."

    title = Param(str, required=True, help="The new title.")
    status = Param(
        str,
        default="open",
        choices=["open", "pending", "closed"],
        help="Only items in this status.",
    )
    up_to = Param(int, min=1, help="Only items with an id up to this one.")
    shout = Param(bool, default=False, help="Upper-case the title.")
    api_key = Param(str, sensitive=True, help="A secret the job would pass on.")

    def get_queryset(self) -> QuerySet[Item]:
        items = Item.objects.filter(status=self.status)
        return items if self.up_to is None else items.filter(pk__lte=self.up_to)

    def process(self, chunk: Chunk) -> int:
        if self.title == "unreachable":  # a job whose error message quotes its secret
            raise RuntimeError(f"could not post to https://hooks.example/?key={self.api_key}")
        return chunk.queryset.update(title=self.title.upper() if self.shout else self.title)
