"""``--dry-run``: the job's real code on a sample, in a transaction that is rolled back."""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any

import pytest
from django.core.management import call_command
from django.db import transaction
from django.db.models import F, QuerySet

from batchjobs import Chunk, ResumableJob
from batchjobs.models import JobRun
from batchjobs.rehearsal import Rehearsal, rehearse
from tests.batchjobs.fakes import CollidingRotation
from tests.testapp.jobs import RotateItemTokens
from tests.testapp.models import Group, Item, Member

pytestmark = pytest.mark.django_db(transaction=True)

JOB = RotateItemTokens.name
NOTIFYING = "scenario_notifying_item_rotation"  # tests/scenario_jobs/items.py


def _rows() -> dict[int, tuple[Any, ...]]:
    return {
        t.pk: (t.token, t.token_issued_at, t.title, t.status, t.updated_at)
        for t in Item.objects.all()
    }


def test_rehearse__measures_on_a_sample_and_leaves_nothing_changed(seed_items) -> None:
    seed_items(60)
    before = _rows()
    result = rehearse(RotateItemTokens(), sample=25)
    assert (result.sample, result.changed, result.total, result.error) == (25, 25, 60, None)
    assert result.seconds > 0
    assert result.seconds_per_row == pytest.approx(result.seconds / 25)
    assert result.projected_seconds == pytest.approx(result.seconds / 25 * 60)
    assert _rows() == before
    assert not JobRun.objects.exists()


def test_rehearse__sample_larger_than_the_table_takes_every_row(seed_items) -> None:
    seed_items(7)
    result = rehearse(RotateItemTokens(), sample=1_000)
    assert (result.sample, result.changed, result.total) == (7, 7, 7)


def test_rehearse__reports_a_uniqueness_collision_without_the_value(seed_items) -> None:
    seed_items(10)
    before = _rows()
    result = rehearse(CollidingRotation(), sample=5)
    assert result.error is not None
    assert "unique" in result.error.lower()
    assert "00000000-0000-4000-8000-000000000000" not in result.error
    assert result.changed is None
    assert _rows() == before


def test_rehearse__job_that_does_not_count_is_assumed_to_change_every_row(
    seed_items: Callable[[int], int], monkeypatch: pytest.MonkeyPatch
) -> None:
    seed_items(5)
    job = RotateItemTokens()
    monkeypatch.setattr(job, "process", lambda chunk: None)
    assert rehearse(job, sample=3).changed == 3


def test_rehearse__empty_table(transactional_db: None) -> None:
    result = rehearse(RotateItemTokens(), sample=10)
    assert (result.sample, result.total, result.changed) == (0, 0, None)
    assert (result.seconds_per_row, result.projected_seconds) == (None, None)


def test_rehearsal__projection_arithmetic() -> None:
    result = Rehearsal(sample=100, changed=100, total=1_000_000, seconds=0.5, error=None)
    assert result.seconds_per_row == 0.005
    assert result.projected_seconds == 5_000


# -- a job with effects outside the database ------------------------------------------------


@pytest.mark.usefixtures("registry_snapshot")
def test_rehearse__the_job_knows_it_is_rehearsing_and_only_then(seed_items) -> None:
    class Recording(RotateItemTokens):
        name = "test_rehearsal_recording"
        description = "Remembers what rehearsing said during each process call."

        def __init__(self) -> None:
            self.seen: list[bool] = []

        def process(self, chunk: Chunk) -> int:
            self.seen.append(self.rehearsing)
            return super().process(chunk)

    seed_items(5)
    job = Recording()
    assert job.rehearsing is False
    rehearse(job, sample=5)
    assert (job.seen, job.rehearsing) == ([True], False)


@pytest.mark.usefixtures("registry_snapshot")
def test_rehearse__side_effects_deferred_to_on_commit_never_happen(seed_items, tmp_path) -> None:
    sent = tmp_path / "sent"

    class Deferring(RotateItemTokens):
        name = "test_rehearsal_deferring"
        description = "Notifies once the chunk's transaction commits."

        def process(self, chunk: Chunk) -> int:
            transaction.on_commit(lambda: sent.write_text(f"{len(chunk)} notified"))
            return super().process(chunk)

    seed_items(5)
    assert rehearse(Deferring(), sample=5).changed == 5
    assert not sent.exists()


def test_runjob__dry_run_of_a_job_with_outside_effects_performs_none(
    seed_items, cli, tmp_path
) -> None:
    seed_items(20)
    notified = tmp_path / "notified"
    env = {"SCENARIO_NOTIFY_FILE": str(notified)}
    rehearsed = cli.run("runjob", NOTIFYING, "--dry-run", env=env)
    assert rehearsed.returncode == 0, rehearsed.stderr
    assert "rows that would change: 20" in rehearsed.stdout
    assert not notified.exists()
    # The same job in a real run, which sets nothing: rehearsing is False, it notifies.
    ran = cli.run("runjob", NOTIFYING, "--log-format", "json", env=env)
    assert ran.returncode == 0, ran.stderr
    assert len(notified.read_text().splitlines()) == 20


# -- the sample is one chunk at most --------------------------------------------------------


def test_rehearse__sample_is_capped_at_the_largest_chunk(seed_items, settings) -> None:
    settings.BATCHJOBS_MAX_CHUNK_SIZE = 12
    seed_items(30)
    before = _rows()
    result = rehearse(RotateItemTokens(), sample=1_000_000_000)
    assert (result.sample, result.changed, result.total, result.capped_at) == (12, 12, 30, 12)
    assert rehearse(RotateItemTokens(), sample=12).capped_at is None
    assert _rows() == before


def test_runjob__dry_run_with_a_huge_batch_size_says_the_sample_was_capped(
    seed_items, settings
) -> None:
    settings.BATCHJOBS_MAX_CHUNK_SIZE = 12
    seed_items(30)
    out = io.StringIO()
    # The largest batch size the option accepts, far above the largest chunk.
    call_command(
        "runjob", JOB, "--dry-run", "--batch-size", "1000000", stdout=out, stderr=io.StringIO()
    )
    lines = out.getvalue().splitlines()
    assert lines[:3] == [
        f"Dry run of {JOB} on 12 rows (rolled back):",
        "  sample capped at 12 rows, the largest chunk (asked for 1,000,000): one "
        "transaction must not lock the whole table.",
        "  rows that would change: 12",
    ]


@pytest.mark.usefixtures("registry_snapshot")
def test_rehearse__a_to_many_filter_samples_and_counts_each_row_once(transactional_db) -> None:
    a, b = Group.objects.create(name="a"), Group.objects.create(name="b")
    people = Member.objects.bulk_create(Member(name=f"m{i}") for i in range(20))
    for person in people[:10]:
        person.groups.add(a, b)

    class Notify(ResumableJob):
        name = "test_rehearsal_notify_groups"
        description = "Notify the members of groups a and b."

        def get_queryset(self) -> QuerySet[Member]:
            return Member.objects.filter(groups__name__in=["a", "b"])

        def process(self, chunk: Chunk) -> int:
            assert len(set(chunk.keys)) == len(chunk.keys)
            return chunk.update(notified=F("notified") + 1)

    result = rehearse(Notify(), sample=8)
    assert (result.sample, result.changed, result.total, result.error) == (8, 8, 10, None)
