from __future__ import annotations

import io
import json
import sys
from collections.abc import Iterator
from typing import Any

import pytest
from django.core.management import call_command

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


# -- a broken module in a job package --------------------------------------------------

BROKEN = "tests.batchjobs.broken_jobs"
EXPLODING = f"module {BROKEN}.exploding failed to import: RuntimeError: boom at import"
MISSING = (
    f"module {BROKEN}.missing_dependency failed to import: ModuleNotFoundError: No module "
    "named 'batchjobs_no_such_dependency'"
)


@pytest.fixture
def with_broken_package(
    registry_snapshot: object, monkeypatch: pytest.MonkeyPatch, settings: Any
) -> Iterator[None]:
    """A process that has not looked for jobs yet, whose job packages include one with a
    good module and two that raise at import."""
    monkeypatch.setattr(registry, "_discovered", False)
    monkeypatch.setattr(registry, "_broken", {}, raising=False)
    settings.BATCHJOBS_JOB_PACKAGES = ["jobs", BROKEN]
    yield
    for name in [m for m in sys.modules if m.startswith(BROKEN)]:
        del sys.modules[name]


@pytest.mark.usefixtures("with_broken_package")
def test_discover__a_broken_module_is_reported_and_the_others_stay_usable() -> None:
    assert registry.get("rotate_ticket_tokens") is RotateTicketTokens
    assert registry.get("broken_package_good_job").__module__ == f"{BROKEN}.good"
    broken = registry.broken()
    assert [(m.module, m.error_class, m.error) for m in broken] == [
        (f"{BROKEN}.exploding", "RuntimeError", "boom at import"),  # the first line only
        (
            f"{BROKEN}.missing_dependency",
            "ModuleNotFoundError",
            "No module named 'batchjobs_no_such_dependency'",
        ),
    ]
    assert [str(m) for m in broken] == [EXPLODING, MISSING]


@pytest.mark.usefixtures("with_broken_package")
def test_registry__unknown_name_notes_the_modules_that_failed_to_import() -> None:
    with pytest.raises(UnknownJob) as caught:
        registry.get("nope")
    message = str(caught.value)  # other tests' jobs may be registered too
    assert message.startswith("Unknown job 'nope'. Known jobs: broken_package_good_job, ")
    assert message.endswith(f"rotate_ticket_tokens. Note: {EXPLODING}. Note: {MISSING}.")
    assert caught.value.exit_code == 2


@pytest.mark.django_db
@pytest.mark.usefixtures("with_broken_package")
def test_listjobs__lists_the_good_jobs_and_a_line_per_broken_module() -> None:
    out = io.StringIO()
    call_command("listjobs", stdout=out)
    lines = out.getvalue().splitlines()
    jobs = [line.split()[0] for line in lines[1:] if line and not line.startswith(" ")]
    assert {"broken_package_good_job", "rotate_ticket_tokens"} <= set(jobs)
    assert lines[-2:] == [
        f"Failed to import {BROKEN}.exploding: RuntimeError: boom at import (its jobs are "
        "not listed).",
        f"Failed to import {BROKEN}.missing_dependency: ModuleNotFoundError: No module named "
        "'batchjobs_no_such_dependency' (its jobs are not listed).",
    ]


@pytest.mark.django_db
@pytest.mark.usefixtures("with_broken_package")
def test_listjobs__json_has_an_entry_per_broken_module() -> None:
    out = io.StringIO()
    call_command("listjobs", "--json", stdout=out)
    entries = json.loads(out.getvalue())
    jobs = [e["job"] for e in entries]
    assert {"broken_package_good_job", "rotate_ticket_tokens"} <= set(jobs)
    assert jobs[-2:] == [None, None]  # after the jobs
    assert entries[-2] == {
        "job": None,
        "module": f"{BROKEN}.exploding",
        "error_class": "RuntimeError",
        "error": "boom at import",
        "runs": [],
    }
    assert entries[-1]["module"] == f"{BROKEN}.missing_dependency"
