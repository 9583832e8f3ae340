"""Fixtures for the library's tests: rows of the test app's ``Item`` to run jobs over; and
logging and the job registry, which are process-wide state, so tests that change them get
them back as they were."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import structlog

from batchjobs import registry
from tests.testapp.seeding import seed_items as create_items


@pytest.fixture
def seed_items(transactional_db: None) -> Callable[[int], int]:
    """``seed_items(n)`` creates n items (tests.testapp) and returns n; the library's tests
    run their jobs over these, never over the domain's tables."""
    return create_items


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    """``events.configure`` (and so ``runjob``) replaces the root handlers and structlog's
    configuration; put both back so one test's stream does not receive the next test's
    records."""
    saved = dict(structlog.get_config())
    saved["processors"] = list(saved["processors"])
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    structlog.configure(**saved)
    for handler in list(root.handlers):
        root.removeHandler(handler)
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(level)


@pytest.fixture
def registry_snapshot() -> Iterator[dict[str, Any]]:
    """Jobs defined by a test are registered for the test only."""
    registry.discover()
    saved = dict(registry._registry)
    yield saved
    registry._registry.clear()
    registry._registry.update(saved)


@pytest.fixture
def small_chunks(settings: Any) -> None:
    """Allow chunks of a few rows (the library's floor is 100) and a progress event per
    chunk, so a run over a few dozen rows has several chunks."""
    settings.BATCHJOBS_MIN_CHUNK_SIZE = 1
    settings.BATCHJOBS_PROGRESS_INTERVAL_SECONDS = 0
