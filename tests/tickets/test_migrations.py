from __future__ import annotations

import io

import pytest
from django.core.management import call_command


@pytest.mark.django_db
def test_models__migrations_match_the_models() -> None:
    """The domain's migrations match its models (the library's tests check only their own
    apps)."""
    out = io.StringIO()
    call_command("makemigrations", "tickets", "--check", "--dry-run", stdout=out)
    assert "No changes detected" in out.getvalue()
