"""Argument types for the commands: a bad value is one argparse line, never a traceback;
and a job's parameters as options of ``runjob NAME``.

The values an option takes are ``batchjobs.options.LIMITS``, checked by ``options.check``:
the same words whether the value comes from the command line, the admin or Python.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from batchjobs import options
from batchjobs.exceptions import InvalidOption

if TYPE_CHECKING:
    from batchjobs.job import ResumableJob


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


# What runjob's own options are called (dests), Django's included: a job parameter may not
# take one of these names (``ResumableJob`` refuses it when the class is defined), and
# tests/batchjobs/test_parameters.py checks this list against runjob's parser.
RUNJOB_OPTIONS = frozenset(
    {
        "name",
        "batch_size",
        "target_chunk_seconds",
        "sleep",
        "log_format",
        "max_runtime",
        "statement_timeout",
        "lock_timeout",
        "max_quarantined",
        "sql_side",
        "vacuum",
        "reason",
        "restart",
        "resume",
        "retry_quarantined",
        "dry_run",
        "pause",
        "cancel",
        "tune",
        "sample",
        "workers",
        "worker_for",
        "enqueue",
        # Django's own
        "help",
        "version",
        "verbosity",
        "settings",
        "pythonpath",
        "traceback",
        "no_color",
        "force_color",
        "skip_checks",
    }
)
# Where a parameter's value lands in the parsed options: never one of runjob's own dests.
PARAMETER_DEST = "parameter:"


def add_parameters(parser: argparse.ArgumentParser, job_class: type[ResumableJob]) -> None:
    """``job_class``'s parameters as options of ``parser``, in a group of their own. The
    values stay words here: ``given_parameters`` checks them, so that a bad one is the
    library's one line (exit 2), the same as from Python."""
    params = job_class.parameters
    if not params:
        return
    group = parser.add_argument_group(
        f"parameters of {job_class.name}",
        "Stored with the run. A resume without them uses the run's; different ones are "
        "refused (start over with --restart).",
    )
    for name, param in params.items():
        dest = PARAMETER_DEST + name
        if param.type is bool:
            group.add_argument(
                param.option,
                dest=dest,
                action=argparse.BooleanOptionalAction,
                default=None,
                help=param.help_line(),
            )
            continue
        choices = param.choices if param.choices and not param.sensitive else None
        metavar = "{" + ",".join(str(c) for c in choices) + "}" if choices else name.upper()
        group.add_argument(
            param.option, dest=dest, default=None, metavar=metavar, help=param.help_line()
        )


def given_parameters(job_class: type[ResumableJob], options: Mapping[str, Any]) -> dict[str, Any]:
    """The parameters given on the command line, parsed and checked (``InvalidParameter``
    naming the option, never a sensitive value)."""
    given: dict[str, Any] = {}
    for name, param in job_class.parameters.items():
        raw = options.get(PARAMETER_DEST + name)
        if raw is not None:
            given[name] = param.check(raw) if isinstance(raw, bool) else param.parse(raw)
    return given


def job_name_in(parser: argparse.ArgumentParser, args: Sequence[str]) -> str | None:
    """The first positional word of ``args`` (runjob's NAME), skipping the options and
    their values, without parsing: the parser needs NAME's parameters before it parses."""
    takes_value = {
        option
        for action in parser._actions
        if action.nargs != 0
        for option in action.option_strings
    }
    words = iter(args)
    for word in words:
        if word == "--":
            return next(words, None)
        if word.startswith("-"):
            if "=" not in word and _takes_value(word, takes_value):
                next(words, None)
            continue
        return word
    return None


def _takes_value(word: str, takes_value: set[str]) -> bool:
    """As argparse reads ``word``: an option, or the one option it abbreviates."""
    if word in takes_value:
        return True
    if not word.startswith("--"):
        return False
    matches = [option for option in takes_value if option.startswith(word)]
    return len(matches) == 1
