"""DEBUG=True in production by mistake: Django then logs every statement of a connection
(up to 9,000) in ``connection.queries``. A run of many chunks must not let that log grow
with the chunks, and no token may be in it (the token writes bypass the debug cursor)."""

from __future__ import annotations

import pytest
from django.db import connection

from batchjobs import Chunk
from batchjobs.models import State
from batchjobs.options import RunOptions
from batchjobs.runner import Runner
from jobs.rotate_ticket_tokens import RotateTicketTokens
from tests.faults.helpers import assert_rotated_exactly_once, leaked, snapshot, token_forms


class _Measured(RotateTicketTokens):
    """The real rotation, noting the size and text of the query log at every chunk."""

    name = "faults_measured_rotation"
    description = "The token rotation, measuring Django's DEBUG query log (fault tests)."

    def __init__(self) -> None:
        self.sizes: list[int] = []
        self.logged: list[str] = []

    def process(self, chunk: Chunk) -> int:
        changed = super().process(chunk)
        self.sizes.append(len(connection.queries_log))
        self.logged.extend(q["sql"] for q in connection.queries_log)
        return changed


@pytest.mark.django_db(transaction=True)
def test_debug_true__query_log_stays_small_over_many_chunks_and_holds_no_token(
    seed, settings, rotation_audit
) -> None:
    settings.DEBUG = True
    seed(6_000)
    before = snapshot()
    job = _Measured()
    outcome = Runner(job, RunOptions(batch_size=100)).run()

    assert outcome.state == State.SUCCEEDED
    assert len(job.sizes) == 60
    assert connection.queries_logged, "the test must run with the debug cursor on"
    assert max(job.sizes) <= 15, f"the query log grew to {max(job.sizes)} entries in a chunk"
    assert job.sizes[-1] <= job.sizes[1], f"the query log grows with the chunks: {job.sizes}"
    assert len(connection.queries_log) <= 50, len(connection.queries_log)
    after = assert_rotated_exactly_once(rotation_audit, before)
    forms = token_forms([*before.values(), *after.values()])
    assert leaked("\n".join(job.logged), forms) == []
