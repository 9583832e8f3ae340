"""Argument types for the commands: a bad value is one argparse line, never a traceback.

The values an option takes are ``batchjobs.options.LIMITS``, checked by ``options.check``:
the same words whether the value comes from the command line, the admin or Python.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

from batchjobs import options
from batchjobs.exceptions import InvalidOption


def option(name: str) -> Callable[[str], float]:
    """The argparse type of option ``name``: parse, then check against its limit."""
    limit = options.LIMITS[name]

    def parse(text: str) -> float:
        try:
            if limit.seconds:
                value: float = float(text)
            else:
                value = int(text.replace("_", "").replace(",", ""))
        except ValueError:
            what = "a number of seconds" if limit.seconds else "a whole number"
            raise argparse.ArgumentTypeError(f"{text!r} is not {what}") from None
        try:
            return options.check(name, value, text=text if limit.seconds else None)
        except InvalidOption as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    parse.__name__ = name  # argparse names the type in some messages
    return parse
