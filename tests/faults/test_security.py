"""Tokens are bearer secrets: no token, old or new, may appear in anything the job prints
or records, even with DEBUG on, the most verbose output, a traceback asked for, and a
unique violation whose database message quotes the colliding token."""

from __future__ import annotations

import json

import pytest

from batchjobs.models import JobRun, QuarantinedRow
from tests.faults.helpers import (
    COLLIDING,
    ROTATE,
    leaked,
    snapshot,
    token_forms,
)

LOUD = {"DJANGO_DEBUG": "1"}


def _recorded() -> str:
    """Every field of every run and quarantined row, as text."""
    runs = list(JobRun.objects.values())
    rows = list(QuarantinedRow.objects.values())
    return json.dumps([runs, rows], default=str)


@pytest.mark.django_db(transaction=True)
def test_no_token_in_output_or_records__debug_verbose_and_collisions(seed, cli) -> None:
    seed(300)
    snapshots = [snapshot()]
    outputs: list[str] = []
    codes: list[int] = []

    def run(*args: str, **env: str) -> None:
        result = cli.run(*args, "-v", "3", "--traceback", env={**LOUD, **env})
        outputs.append(f"$ {' '.join(args)}\n{result.stdout}\n{result.stderr}")
        codes.append(result.returncode)
        snapshots.append(snapshot())

    # A plain rotation, then a rehearsal and a run that hit a unique violation once...
    run("runjob", ROTATE, "--batch-size", "50", "--log-format", "json")
    run("runjob", COLLIDING, "--dry-run", SCENARIO_COLLIDE="always")
    run("runjob", COLLIDING, "--batch-size", "50", "--log-format", "json", SCENARIO_COLLIDE="once")
    # ...and one whose collision does not go away (the run fails or sets the row aside).
    run(
        "runjob",
        COLLIDING,
        "--restart",
        "--batch-size",
        "50",
        "--log-format",
        "console",
        SCENARIO_COLLIDE="always",
    )
    run("listjobs", "--json")
    run("listjobs", COLLIDING)

    assert codes[0] == 0 and codes[2] == 0, outputs
    assert codes[1] != 0 and codes[3] != 0, outputs
    assert "unique" in outputs[1].lower()  # the rehearsal says what went wrong...
    recorded = _recorded()
    assert "unique" in recorded.lower()  # ...and so does the record of the failed run
    forms = token_forms(row for snap in snapshots for row in snap.values())
    assert len(forms) >= 2 * 300 * 3
    for text in outputs:
        assert leaked(text, forms) == [], text
    assert leaked(recorded, forms) == []
