from __future__ import annotations

import sys
from collections.abc import Iterator

import pytest

from batchjobs import registry
from batchjobs.exceptions import UnknownJob
from jobs.rotate_ticket_tokens import RotateTicketTokens

pytestmark = pytest.mark.usefixtures("registry_snapshot")


def test_registry__finds_the_shipped_job_by_name() -> None:
    assert registry.get("rotate_ticket_tokens") is RotateTicketTokens


def test_registry__unknown_name_lists_the_known_jobs() -> None:
    with pytest.raises(UnknownJob) as caught:
        registry.get("rotate_tiket_tokens")
    message = str(caught.value)
    assert message.startswith("Unknown job 'rotate_tiket_tokens'. Known jobs: ")
    assert "rotate_ticket_tokens" in message
    assert caught.value.exit_code == 2


def test_registry__all_jobs_sorted_by_name() -> None:
    names = [job.name for job in registry.all_jobs()]
    assert names == sorted(names)
    assert "rotate_ticket_tokens" in names


def test_registry__registering_the_same_class_again_is_a_reimport_not_a_clash() -> None:
    registry.register(RotateTicketTokens)
    assert registry.get("rotate_ticket_tokens") is RotateTicketTokens


def test_registry__unregister_forgets_a_job() -> None:
    registry.unregister("rotate_ticket_tokens")
    with pytest.raises(UnknownJob):
        registry.get("rotate_ticket_tokens")
    registry.unregister("never_registered")  # no error


@pytest.fixture
def undiscovered(registry_snapshot: object, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """A process that has not looked for jobs yet, and has not imported the sample ones."""
    monkeypatch.setattr(registry, "_discovered", False)
    for name in [m for m in sys.modules if m.startswith("tests.batchjobs.sample_jobs")]:
        monkeypatch.delitem(sys.modules, name)
    yield
    for name in [m for m in sys.modules if m.startswith("tests.batchjobs.sample_jobs")]:
        del sys.modules[name]


@pytest.mark.usefixtures("undiscovered")
def test_discover__imports_every_public_module_of_the_job_packages(settings) -> None:
    settings.BATCHJOBS_JOB_PACKAGES = ["jobs", "tests.batchjobs.sample_jobs"]
    job = registry.get("sample_discovered_noop")  # _private.py would raise if imported
    assert job.__module__ == "tests.batchjobs.sample_jobs.noop"
    assert "tests.batchjobs.sample_jobs._private" not in sys.modules
    assert registry.get("rotate_ticket_tokens") is RotateTicketTokens


@pytest.mark.usefixtures("undiscovered")
def test_discover__runs_once_per_process(settings) -> None:
    settings.BATCHJOBS_JOB_PACKAGES = ["jobs"]
    registry.discover()
    settings.BATCHJOBS_JOB_PACKAGES = ["jobs", "tests.batchjobs.sample_jobs"]
    with pytest.raises(UnknownJob):
        registry.get("sample_discovered_noop")
