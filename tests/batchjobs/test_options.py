"""Option values are checked in one place (``options.check``): the command line, the
admin's tuning and a caller in Python are refused in the same words."""

from __future__ import annotations

import argparse

import pytest

from batchjobs import control
from batchjobs.arguments import option
from batchjobs.exceptions import InvalidOption
from batchjobs.options import LIMITS, RunOptions, check


@pytest.mark.parametrize(
    ("name", "value", "words"),
    [
        ("batch_size", 0, "0 is not greater than zero"),
        ("batch_size", 10**23, f"{10**23} is over the maximum of 1,000,000"),
        ("max_quarantined", -1, "-1 is negative"),
        ("sleep", -0.5, "-0.5 is not a non-negative number of seconds"),
        ("max_runtime", 0.0, "0 is below the minimum of 0.001 seconds"),
        ("lock_timeout", 0.0001, "0.0001 is below the minimum of 0.001 seconds"),
    ],
)
def test_check__the_same_words_from_every_door(name: str, value: float, words: str) -> None:
    with pytest.raises(InvalidOption) as direct:
        check(name, value)
    assert str(direct.value).startswith(words)
    with pytest.raises(InvalidOption) as python:
        RunOptions(**{name: value})
    assert str(python.value).startswith(f"--{name.replace('_', '-')}: {words}")
    with pytest.raises(argparse.ArgumentTypeError) as command_line:
        option(name)(str(value) if isinstance(value, int) else f"{value:g}")
    assert str(command_line.value).startswith(words)


def test_check__every_limit_accepts_its_own_bounds() -> None:
    for name, limit in LIMITS.items():
        assert check(name, limit.minimum) == limit.minimum, name
        assert check(name, limit.maximum) == limit.maximum, name


@pytest.mark.django_db
def test_tune__refused_before_the_database_in_the_same_words() -> None:
    with pytest.raises(InvalidOption, match=r"^--sleep: 700000 is over the maximum of 604,800"):
        control.tune("rotate_item_tokens", sleep=700_000)
    with pytest.raises(InvalidOption, match=r"^--batch-size: 0 is not greater than zero"):
        control.tune("rotate_item_tokens", batch_size=0)
