"""Argument types for the commands: a bad value is one argparse line, never a traceback."""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable


def whole_number(*, minimum: int) -> Callable[[str], int]:
    """An ``int`` of at least ``minimum``; ``1_000_000`` and ``1,000,000`` are accepted."""

    def parse(text: str) -> int:
        try:
            value = int(text.replace("_", "").replace(",", ""))
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if value < minimum:
            below = {1: "is not greater than zero", 0: "is negative"}.get(
                minimum, f"is below {minimum}"
            )
            raise argparse.ArgumentTypeError(f"{value} {below}")
        return value

    return parse


def seconds(text: str) -> float:
    """A finite, non-negative number of seconds."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"{text} is not a non-negative number of seconds")
    return value


positive_int = whole_number(minimum=1)
non_negative_int = whole_number(minimum=0)
