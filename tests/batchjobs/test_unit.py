"""The chunk unit's guarantees that only show from inside the process."""

from __future__ import annotations

import signal
from collections.abc import Callable
from typing import Any

import pytest
from django.db import connection

from batchjobs.models import JobRun
from batchjobs.options import RunOptions
from batchjobs.runner import Runner
from batchjobs.stopping import EXIT_CODE_FOR_SIGNAL
from tests.testapp.jobs import RotateItemTokens

pytestmark = pytest.mark.django_db(transaction=True)


def test_unit__stop_signals_are_held_while_a_chunk_commits(
    seed_items: Callable[[int], int], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A handler that raised in the middle of COMMIT could leave the transaction half
    closed; every chunk's COMMIT runs with SIGINT, SIGTERM and SIGHUP blocked (they are
    handled right after), and the mask is restored when the run ends."""
    seed_items(1_000)
    blocked_at_commit: list[bool] = []
    real_commit = connection._commit

    def watched_commit(*args: Any) -> Any:
        mask = signal.pthread_sigmask(signal.SIG_BLOCK, [])
        blocked_at_commit.append(set(EXIT_CODE_FOR_SIGNAL) <= mask)
        return real_commit(*args)

    monkeypatch.setattr(connection, "_commit", watched_commit)
    outcome = Runner(RotateItemTokens(), RunOptions(batch_size=100)).run()

    assert outcome.exit_code == 0, outcome.message
    chunks = JobRun.objects.get(pk=outcome.run_id).chunks
    assert chunks == 10
    assert blocked_at_commit.count(True) >= chunks, blocked_at_commit
    assert not set(EXIT_CODE_FOR_SIGNAL) & signal.pthread_sigmask(signal.SIG_BLOCK, [])
