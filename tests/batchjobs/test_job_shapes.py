"""Whole runs, in this process, over the shapes of rows a job author may hand over that the
domain does not have (``tests.testapp``): a filter across a to-many relation, a model with
multi-table inheritance."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest
from django.db.models import F, QuerySet

from batchjobs import Chunk, ResumableJob
from batchjobs.exceptions import JobFailed
from batchjobs.models import JobRun, State
from batchjobs.options import RunOptions
from batchjobs.runner import Runner
from tests.testapp.models import Group, Member, Restaurant

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("registry_snapshot", "small_chunks"),
]


@pytest.fixture
def grouped() -> list[int]:
    """300 members, 100 of them in both groups a and b; 50 in neither. Returns the 250 in a
    or b."""
    a, b = Group.objects.create(name="a"), Group.objects.create(name="b")
    people = Member.objects.bulk_create(Member(name=f"m{i}") for i in range(300))
    through = Member.groups.through
    through.objects.bulk_create(
        [through(member_id=p.pk, group_id=a.pk) for p in people[:200]]
        + [through(member_id=p.pk, group_id=b.pk) for p in people[100:250]]
    )
    return sorted(p.pk for p in people[:250])


def test_run__a_filter_across_a_to_many_relation_processes_and_counts_each_row_once(
    grouped: list[int],
) -> None:
    class NotifyGroups(ResumableJob):
        name = "test_notify_groups"
        description = "Notify the members of groups a and b (a side effect per row)."

        def __init__(self) -> None:
            self.sent: Counter[int] = Counter()

        def get_queryset(self) -> QuerySet[Member]:
            return Member.objects.filter(groups__name__in=["a", "b"])

        def process(self, chunk: Chunk) -> int:
            self.sent.update(chunk.keys)  # stands for an e-mail per row
            return chunk.update(notified=F("notified") + 1)

        def pending(self, run: Any) -> QuerySet[Member]:
            # Across the same to-many relation: the verification counts each row once.
            return self.get_queryset().filter(notified=0)

    assert NotifyGroups().get_queryset().count() == 350  # 100 members come out twice
    job = NotifyGroups()
    outcome = Runner(job, RunOptions(batch_size=40)).run()

    assert outcome.exit_code == 0, outcome.message
    assert outcome.message.endswith("succeeded: 250 rows.")
    assert job.sent == Counter(grouped)  # every member once, none twice
    notified = Counter(Member.objects.values_list("notified", flat=True))
    assert notified == {1: 250, 0: 50}
    run = JobRun.objects.get(pk=outcome.run_id)
    assert (run.state, run.total, run.done) == (State.SUCCEEDED, 250, 250)
    assert run.chunks == 7  # ceil(250 / 40): the chunks are full, not thinned by repeats
    assert run.verification == {"checked": 250, "stale_found": 0, "reswept": 0, "remaining": 0}


def test_run__a_join_the_library_cannot_see_fails_naming_the_fix(grouped: list[int]) -> None:
    class HiddenJoin(ResumableJob):
        name = "test_hidden_join"
        description = "A job whose queryset repeats rows through extra(tables=...)."

        def get_queryset(self) -> QuerySet[Member]:
            return Member.objects.extra(tables=["testapp_group"])

        def process(self, chunk: Chunk) -> Any:
            return chunk.update(notified=F("notified") + 1)

    with pytest.raises(JobFailed, match=r"more than once .* filter with Exists\(") as caught:
        Runner(HiddenJoin(), RunOptions(batch_size=40)).run()
    assert "(batchjobs.exceptions.JobDefinitionError)" in str(caught.value)
    assert not Member.objects.filter(notified__gt=0).exists()  # nothing was processed


def test_run__a_job_over_an_inherited_model_writes_parent_and_child_columns() -> None:
    for i in range(90):
        Restaurant.objects.create(name=f"r{i}", ref=f"ref{i}", code=f"code{i}")

    class RenameRestaurants(ResumableJob):
        name = "test_rename_restaurants"
        description = "Rename every restaurant (the name lives in the parent's table)."

        def get_queryset(self) -> QuerySet[Restaurant]:
            return Restaurant.objects.all()

        def process(self, chunk: Chunk) -> int:
            return chunk.update(name=[f"renamed {k}" for k in chunk.keys], rating=5)

    outcome = Runner(RenameRestaurants(), RunOptions(batch_size=25)).run()

    assert outcome.exit_code == 0, outcome.message
    assert outcome.message.endswith("succeeded: 90 rows.")
    rows = Restaurant.objects.values_list("pk", "name", "rating")
    assert all((name, rating) == (f"renamed {pk}", 5) for pk, name, rating in rows)


def test_run__verification_over_a_to_many_filter_counts_each_stale_row_once(
    grouped: list[int],
) -> None:
    """A member of both groups missed once (as a write-back would leave it) is one stale
    row, found once and re-swept once, not two."""
    missed = grouped[150]  # in groups a and b

    class MissOnce(ResumableJob):
        name = "test_miss_once"
        description = "Notify the members of groups a and b, missing one the first time."

        def __init__(self) -> None:
            self.skipped = False

        def get_queryset(self) -> QuerySet[Member]:
            return Member.objects.filter(groups__name__in=["a", "b"])

        def process(self, chunk: Chunk) -> int:
            keys = list(chunk.keys)
            if missed in keys and not self.skipped:
                self.skipped = True
                keys.remove(missed)
            return Member.objects.filter(pk__in=keys).update(notified=F("notified") + 1)

        def pending(self, run: Any) -> QuerySet[Member]:
            return self.get_queryset().filter(notified=0)

    outcome = Runner(MissOnce(), RunOptions(batch_size=40)).run()
    assert outcome.exit_code == 0, outcome.message
    run = JobRun.objects.get(pk=outcome.run_id)
    assert run.verification == {"checked": 250, "stale_found": 1, "reswept": 1, "remaining": 0}
    assert Member.objects.get(pk=missed).notified == 1
