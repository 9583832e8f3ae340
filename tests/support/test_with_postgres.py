"""The PostgreSQL half of `make test` must find a server or make one, never skip."""

from __future__ import annotations

import pytest

from tests.support import with_postgres


def test_answers__false_for_a_closed_port() -> None:
    assert not with_postgres._answers("postgres://postgres@127.0.0.1:1/batchjobs")


@pytest.mark.skipif(
    with_postgres._binary("initdb") is None,
    reason="needs PostgreSQL's initdb/pg_ctl for a throwaway cluster: apt-get install postgresql",
)
def test_throwaway_cluster__starts_answers_and_goes_away() -> None:
    with with_postgres._throwaway_cluster() as url:
        assert url is not None
        assert with_postgres._answers(url)
    assert not with_postgres._answers(url)


def test_main__without_a_command_says_how_to_use_it(capsys: pytest.CaptureFixture[str]) -> None:
    assert with_postgres.main([]) == 2
    assert "usage: python -m tests.support.with_postgres COMMAND" in capsys.readouterr().err
