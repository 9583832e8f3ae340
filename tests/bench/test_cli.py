"""`python -m tests.bench`'s options (the same as the old `bench_rotation` command's) and
its refusals; a real run is `make bench`'s."""

from __future__ import annotations

import pytest

from tests.bench import cli


def test_parser__defaults_are_the_documented_ones() -> None:
    args = cli.parser().parse_args([])
    assert (args.rows, args.naive_rows, args.repeat, args.with_10m) == (
        1_000_000,
        100_000,
        1,
        False,
    )
    assert (args.json, args.interactive, args.job, args.verbosity) == (
        None,
        True,
        "rotate_ticket_tokens",
        1,
    )
    assert args.eta_under_load  # make bench measures the ETA too


def test_parser__eta_under_load_can_be_left_out() -> None:
    assert not cli.parser().parse_args(["--no-eta-under-load"]).eta_under_load


def test_parser__takes_make_bench_args() -> None:
    args = cli.parser().parse_args(
        ["--rows", "200,000", "--repeat", "3", "--with-10m", "--no-input", "--json", "b/1.json"]
    )
    assert (args.rows, args.repeat, args.with_10m, args.interactive) == (200_000, 3, True, False)
    assert str(args.json) == "b/1.json"


def test_parser__refuses_zero_rows(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        cli.parser().parse_args(["--rows", "0"])
    assert exited.value.code == 2
    assert "--rows: 0 is not greater than zero" in capsys.readouterr().err


def test_main__refuses_a_database_other_than_postgresql(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from django.db import connection  # noqa: PLC0415

    if connection.vendor == "postgresql":
        pytest.skip("the refusal is for other databases; this pass runs on PostgreSQL")
    assert cli.main(["--rows", "10"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("python -m tests.bench: The benchmark measures PostgreSQL only;")


def test_parser__eta_only_is_off_by_default_and_can_be_asked_for() -> None:
    assert not cli.parser().parse_args([]).eta_only
    assert cli.parser().parse_args(["--eta-only", "--repeat", "3"]).eta_only


def test_options__refuse_eta_only_without_the_eta() -> None:
    from tests.bench.measure import BenchmarkError  # noqa: PLC0415
    from tests.bench.run import Options  # noqa: PLC0415

    with pytest.raises(BenchmarkError, match="--eta-only measures the ETA under load"):
        Options(eta_only=True, eta_under_load=False)
