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
from tests import testapp
from tests.testapp.jobs import RotateItemTokens

pytestmark = pytest.mark.usefixtures("registry_snapshot")


def test_registry__finds_a_discovered_job_by_name() -> None:
    assert registry.get("rotate_item_tokens") is RotateItemTokens


def test_registry__unknown_name_lists_the_known_jobs() -> None:
    with pytest.raises(UnknownJob) as caught:
        registry.get("rotate_itme_tokens")
    message = str(caught.value)
    assert message.startswith("Unknown job 'rotate_itme_tokens'. Known jobs: ")
    assert "rotate_item_tokens" in message
    assert caught.value.exit_code == 2


def test_registry__all_jobs_sorted_by_name() -> None:
    names = [job.name for job in registry.all_jobs()]
    assert names == sorted(names)
    assert "rotate_item_tokens" in names


def test_registry__registering_the_same_class_again_is_a_reimport_not_a_clash() -> None:
    registry.register(RotateItemTokens)
    assert registry.get("rotate_item_tokens") is RotateItemTokens


def test_registry__unregister_forgets_a_job() -> None:
    registry.unregister("rotate_item_tokens")
    with pytest.raises(UnknownJob):
        registry.get("rotate_item_tokens")
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
    settings.BATCHJOBS_JOB_PACKAGES = ["tests.batchjobs.sample_jobs"]
    job = registry.get("sample_discovered_noop")  # _private.py would raise if imported
    assert job.__module__ == "tests.batchjobs.sample_jobs.noop"
    assert "tests.batchjobs.sample_jobs._private" not in sys.modules
    assert registry.get("rotate_item_tokens") is RotateItemTokens  # an installed app's


@pytest.mark.usefixtures("undiscovered")
def test_discover__runs_once_per_process(settings) -> None:
    settings.BATCHJOBS_JOB_PACKAGES = []
    registry.discover()
    settings.BATCHJOBS_JOB_PACKAGES = ["tests.batchjobs.sample_jobs"]
    with pytest.raises(UnknownJob):
        registry.get("sample_discovered_noop")


# -- a broken module in a job package --------------------------------------------------

BROKEN = "tests.batchjobs.broken_jobs"
APP_JOBS = "tests.testapp.jobs"
EXPLODING = f"module {BROKEN}.exploding failed to import: RuntimeError: boom at import"
MISSING = (
    f"module {BROKEN}.missing_dependency failed to import: ModuleNotFoundError: No module "
    "named 'batchjobs_no_such_dependency'"
)


@pytest.fixture
def with_broken_package(
    registry_snapshot: object, monkeypatch: pytest.MonkeyPatch, settings: Any
) -> Iterator[None]:
    """A process that has not looked for jobs yet, whose job package has a good module and
    two that raise at import.

    As in a new process, nothing is registered and no job module is imported yet: the jobs
    this test session defined elsewhere (tests.batchjobs.fakes) are not in the lists, and
    the test app's jobs module is found, and imported afresh, like any installed app's."""
    monkeypatch.setattr(registry, "_discovered", False)
    monkeypatch.setattr(registry, "_broken", {}, raising=False)
    monkeypatch.setattr(registry, "_registry", {})
    monkeypatch.delitem(sys.modules, APP_JOBS)
    monkeypatch.delattr(testapp, "jobs")
    settings.BATCHJOBS_JOB_PACKAGES = [BROKEN]
    yield
    for name in [m for m in sys.modules if m.startswith(BROKEN)]:
        del sys.modules[name]


@pytest.mark.usefixtures("with_broken_package")
def test_discover__a_broken_module_is_reported_and_the_others_stay_usable() -> None:
    assert registry.get("rotate_item_tokens").__module__ == APP_JOBS
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
    assert str(caught.value) == (
        "Unknown job 'nope'. Known jobs: broken_package_good_job, rotate_item_tokens, "
        "tag_items. "
        f"Note: {EXPLODING}. Note: {MISSING}."
    )
    assert caught.value.exit_code == 2


@pytest.mark.django_db
@pytest.mark.usefixtures("with_broken_package")
def test_listjobs__lists_the_good_jobs_and_a_line_per_broken_module() -> None:
    out = io.StringIO()
    call_command("listjobs", stdout=out)
    lines = out.getvalue().splitlines()
    assert [line.split()[0] for line in lines[1:3]] == [
        "broken_package_good_job",
        "rotate_item_tokens",
    ]
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
    assert [e["job"] for e in entries] == [
        "broken_package_good_job",
        "rotate_item_tokens",
        "tag_items",
        None,
        None,
    ]
    assert entries[3] == {
        "job": None,
        "module": f"{BROKEN}.exploding",
        "error_class": "RuntimeError",
        "error": "boom at import",
        "runs": [],
    }
    assert entries[4]["module"] == f"{BROKEN}.missing_dependency"
