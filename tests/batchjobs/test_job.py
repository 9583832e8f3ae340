"""A misconfigured job fails when its class is defined, and the message names the fix."""

from __future__ import annotations

from dataclasses import FrozenInstanceError
from datetime import UTC, datetime
from typing import Any

import pytest
from django.db.models import QuerySet

from batchjobs import Chunk, ResumableJob, RunInfo, registry
from batchjobs.exceptions import BatchJobError, JobDefinitionError
from tests.testapp.models import Item

pytestmark = pytest.mark.usefixtures("registry_snapshot")


class _Works:
    """The two methods every concrete job needs, to mix into definition tests."""

    def get_queryset(self) -> QuerySet[Any]:
        return Item.objects.all()

    def process(self, chunk: Chunk) -> int:
        return 0


def test_job__complete_definition_is_registered_under_its_name() -> None:
    class Complete(_Works, ResumableJob):
        name = "test_job_complete"
        description = "A job with everything it needs."

    assert registry.get("test_job_complete") is Complete
    assert Complete.abstract is False


def test_job__missing_name_is_refused() -> None:
    with pytest.raises(JobDefinitionError) as caught:

        class Nameless(_Works, ResumableJob):
            description = "No name."

    message = str(caught.value)
    assert "Nameless needs a name" in message
    assert "name = 'rotate_ticket_tokens'" in message


@pytest.mark.parametrize("bad", ["Rotate", "rotate-tokens", "1rotate", "rotate tokens", "", 42])
def test_job__name_that_is_not_a_lowercase_identifier_is_refused(bad: Any) -> None:
    with pytest.raises(JobDefinitionError, match="needs a name"):
        type(
            "BadName",
            (_Works, ResumableJob),
            {"name": bad, "description": "Bad name.", "__module__": __name__},
        )


def test_job__name_inherited_from_a_concrete_parent_is_not_enough() -> None:
    class Parent(_Works, ResumableJob):
        name = "test_job_parent"
        description = "Parent."

    with pytest.raises(JobDefinitionError, match="Child needs a name"):

        class Child(Parent):
            pass


def test_job__missing_description_is_refused() -> None:
    with pytest.raises(JobDefinitionError, match="Undescribed needs a description"):

        class Undescribed(_Works, ResumableJob):
            name = "test_job_undescribed"


def test_job__an_init_that_needs_more_than_parameters_is_refused() -> None:
    """A resume builds the job again from the run's stored values: an __init__ with a
    required argument would fail then, with a TypeError, after the run was claimed."""
    with pytest.raises(JobDefinitionError, match=r"Needy.__init__ requires client: a job"):

        class Needy(_Works, ResumableJob):
            name = "test_job_needy"
            description = "Needs a client."

            def __init__(self, client: object, **values: Any) -> None:
                super().__init__(**values)
                self.client = client

    class Optional(_Works, ResumableJob):  # an optional argument is fine
        abstract = True

        def __init__(self, client: object = None, **values: Any) -> None:
            super().__init__(**values)


@pytest.mark.parametrize("method", ["get_queryset", "process"])
def test_job__missing_method_is_refused(method: str) -> None:
    body = {
        "name": "test_job_half_done",
        "description": "Half done.",
        "__module__": __name__,
        **{m: getattr(_Works, m) for m in ("get_queryset", "process") if m != method},
    }
    with pytest.raises(JobDefinitionError, match=rf"HalfDone must implement {method}\(\)"):
        type("HalfDone", (ResumableJob,), body)
    with pytest.raises(BatchJobError):
        registry.get("test_job_half_done")


def test_job__abstract_base_is_not_registered_and_needs_nothing() -> None:
    class Base(ResumableJob):
        abstract = True

    class Concrete(_Works, Base):
        name = "test_job_from_base"
        description = "From an abstract base."

    assert Base not in registry.all_jobs()
    assert registry.get("test_job_from_base") is Concrete
    assert Concrete.abstract is False


def test_job__two_jobs_with_one_name_are_refused() -> None:
    class First(_Works, ResumableJob):
        name = "test_job_twice"
        description = "First."

    with pytest.raises(JobDefinitionError) as caught:

        class Second(_Works, ResumableJob):
            name = "test_job_twice"
            description = "Second."

    message = str(caught.value)
    assert "Two jobs are named 'test_job_twice'" in message
    assert "First" in message and "Second" in message and "rename one" in message
    assert registry.get("test_job_twice") is First


def test_job__taking_the_name_of_a_discovered_job_is_refused() -> None:
    registry.discover()  # finds rotate_item_tokens in the test app's jobs module
    with pytest.raises(JobDefinitionError, match="Two jobs are named 'rotate_item_tokens'"):

        class Impostor(_Works, ResumableJob):
            name = "rotate_item_tokens"
            description = "Not the real one."


def test_job__definition_error_is_a_type_error_and_a_batch_job_error() -> None:
    assert issubclass(JobDefinitionError, TypeError)
    assert issubclass(JobDefinitionError, BatchJobError)


def test_job__optional_hooks_default_to_nothing() -> None:
    class Plain(_Works, ResumableJob):
        name = "test_job_plain"
        description = "Plain."

    job = Plain()
    assert job.key == "pk"
    assert job.rehearsing is False  # a real run sets nothing: only a rehearsal sets it
    assert job.sql_values(object()) is None
    info = RunInfo(run_id=1, started_at=datetime.now(UTC), high_water_mark=10)
    assert job.pending(info) is None


def test_run_info__is_read_only() -> None:
    info = RunInfo(run_id=1, started_at=datetime.now(UTC), high_water_mark=10)
    with pytest.raises(FrozenInstanceError):
        info.run_id = 2  # type: ignore[misc]
