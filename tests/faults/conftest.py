"""Fixtures of the fault tests (``rotation_audit`` is shared, in tests/conftest.py, and
counts on both databases)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.faults.helpers import Processes


@pytest.fixture
def procs(transactional_db: None) -> Iterator[Processes]:
    """Live runner processes; any still running when the test ends is killed by its pid."""
    processes = Processes()
    yield processes
    processes.cleanup()
