from __future__ import annotations

from typing import Any

from django.db.models import QuerySet

from batchjobs import Chunk, ResumableJob
from tests.testapp.models import Item


class DiscoveredNoop(ResumableJob):
    name = "sample_discovered_noop"
    description = "Found by discovery in a package named in BATCHJOBS_JOB_PACKAGES."

    def get_queryset(self) -> QuerySet[Any]:
        return Item.objects.all()

    def process(self, chunk: Chunk) -> int:
        return 0
