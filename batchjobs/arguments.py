"""Argument types for the commands: a bad value is one argparse line, never a traceback.

Every number has an upper bound too: an absurd value (a batch size of 10**23) would
otherwise reach the database as a raw "bigint out of range", or an error deep in a run.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable

MAX_ROWS = 1_000_000
MAX_SECONDS = 7 * 24 * 3600.0  # a week: no sleep, runtime or chunk target needs more
# PostgreSQL's statement_timeout and lock_timeout are whole milliseconds in a 32-bit int,
# and 0 means "no timeout": 0.0001 s must be refused, not silently turned into "never".
MIN_TIMEOUT_SECONDS = 0.001
MAX_TIMEOUT_SECONDS = 2_147_483.647
_TIMEOUT_RANGE = "PostgreSQL's timeouts are whole milliseconds from 1 to 2147483647"


def whole_number(*, minimum: int, maximum: int | None = None) -> Callable[[str], int]:
    """An ``int`` from ``minimum`` to ``maximum``; ``1_000_000`` and ``1,000,000`` are
    accepted."""

    def parse(text: str) -> int:
        try:
            value = int(text.replace("_", "").replace(",", ""))
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if value < minimum:
            below = {1: "is not greater than zero", 0: "is negative"}.get(
                minimum, f"is below {minimum:,}"
            )
            raise argparse.ArgumentTypeError(f"{value} {below}")
        if maximum is not None and value > maximum:
            raise argparse.ArgumentTypeError(f"{value} is over the maximum of {maximum:,}")
        return value

    return parse


def number_of_seconds(
    *, minimum: float, maximum: float, why_minimum: str = "", why_maximum: str = ""
) -> Callable[[str], float]:
    """A finite number of seconds from ``minimum`` to ``maximum``; the ``why``s explain a
    limit in the error."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
        if not math.isfinite(value) or value < 0:
            raise argparse.ArgumentTypeError(f"{text} is not a non-negative number of seconds")
        if value < minimum:
            raise argparse.ArgumentTypeError(
                f"{text} is below the minimum of {_seconds(minimum)} seconds"
                + _because(why_minimum)
            )
        if value > maximum:
            raise argparse.ArgumentTypeError(
                f"{text} is over the maximum of {_seconds(maximum)} seconds" + _because(why_maximum)
            )
        return value

    return parse


def _seconds(value: float) -> str:
    return f"{value:,.3f}".rstrip("0").rstrip(".")


def _because(why: str) -> str:
    return f" ({why})" if why else ""


positive_int = whole_number(minimum=1)
non_negative_int = whole_number(minimum=0)
row_count = whole_number(minimum=1, maximum=MAX_ROWS)
row_limit = whole_number(minimum=0, maximum=MAX_ROWS)
# Zero is allowed: no sleep between chunks.
seconds = number_of_seconds(minimum=0.0, maximum=MAX_SECONDS, why_maximum="7 days")
# Zero would mean "use the default" to the runner: refuse it rather than surprise.
positive_seconds = number_of_seconds(minimum=0.001, maximum=MAX_SECONDS, why_maximum="7 days")
timeout_seconds = number_of_seconds(
    minimum=MIN_TIMEOUT_SECONDS,
    maximum=MAX_TIMEOUT_SECONDS,
    why_minimum=_TIMEOUT_RANGE,
    why_maximum=_TIMEOUT_RANGE,
)
