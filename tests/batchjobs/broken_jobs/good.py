from __future__ import annotations

from typing import Any

from django.db.models import QuerySet

from batchjobs import Chunk, ResumableJob
from tests.testapp.models import Item


class GoodNeighbour(ResumableJob):
    name = "broken_package_good_job"
    description = "A good job next to broken modules."

    def get_queryset(self) -> QuerySet[Any]:
        return Item.objects.all()

    def process(self, chunk: Chunk) -> int:
        return 0
