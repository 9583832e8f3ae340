"""``Param``: a job's typed parameters, and the one place their values are checked.

A job declares them as class attributes (``days = Param(int, required=True, min=1)``);
``runjob NAME`` offers them as options, the run stores them, and a resume runs with the
stored ones. Pure: no database. A sensitive parameter is never kept or shown in clear:
the run stores a keyed digest (HMAC-SHA256 with ``SECRET_KEY``), enough to tell whether a
resume was given the same value, and everything that shows a run shows ``****``.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import shlex
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from types import MappingProxyType
from typing import Any, Generic, TypeVar, overload

from django.conf import settings
from django.utils import timezone

from batchjobs.exceptions import InvalidParameter, JobDefinitionError, MissingParameter

T = TypeVar("T")

MASK = "****"
_DIGEST = "hmac-sha256:"
_TYPES: dict[type, str] = {
    int: "a whole number",
    float: "a number",
    str: "a string",
    bool: "true or false",
    datetime: "a date and time (ISO 8601)",
}
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


class Param(Generic[T]):
    """One parameter of a job: its type, its default or ``required``, the values it takes
    (``choices``, ``min``/``max``, a ``validate`` callable that raises ``ValueError`` with
    a short reason), its ``help`` for ``runjob NAME --help``, and whether it is
    ``sensitive``.

    ``default`` may be a callable (``timezone.now``): it is called when a run is created,
    and a resume uses the value stored then. Without ``required`` or a default, the value
    is ``None``. On a job instance the attribute is the value: ``self.days``.
    """

    name: str = ""

    def __init__(
        self,
        type: type[T],
        *,
        default: T | Callable[[], T] | None = None,
        required: bool = False,
        help: str = "",
        choices: Iterable[T] | None = None,
        min: T | None = None,
        max: T | None = None,
        validate: Callable[[T], object] | None = None,
        sensitive: bool = False,
    ) -> None:
        self.type = type
        self.default = default
        self.required = required
        self.help = help
        self.choices = tuple(choices) if choices is not None else None
        self.min = min
        self.max = max
        self.validate = validate
        self.sensitive = sensitive

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    @overload
    def __get__(self, instance: None, owner: type) -> Param[T]: ...
    @overload
    def __get__(self, instance: object, owner: type) -> T: ...
    def __get__(self, instance: object | None, owner: type) -> Param[T] | T:
        if instance is None:
            return self
        values: Mapping[str, Any] = instance.params  # type: ignore[attr-defined]
        return values[self.name]  # type: ignore[no-any-return]

    def __set__(self, instance: object, value: object) -> None:
        raise AttributeError(f"{self.name} is a parameter: it is set when the job is made")

    @property
    def option(self) -> str:
        """``max_age`` -> ``--max-age``."""
        return "--" + self.name.replace("_", "-")

    def default_value(self) -> T | None:
        default = self.default
        return default() if callable(default) else default

    # -- checking ----------------------------------------------------------------------

    def shown(self, value: object) -> str:
        """A value as an error or a listing may show it: never a sensitive one."""
        if self.sensitive:
            return MASK
        if isinstance(value, datetime):
            return value.isoformat()
        return repr(value) if isinstance(value, str) else str(value)

    def check(self, value: object) -> T:
        """``value`` if this parameter takes it; otherwise ``InvalidParameter``, one line
        that names the option and never shows a sensitive value."""
        if value is None and not self.required:
            return value  # type: ignore[return-value]  # "not set": the job says what it means
        if self.type is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if self.type is datetime and isinstance(value, datetime) and timezone.is_naive(value):
            value = timezone.make_aware(value)
        if not isinstance(value, self.type) or (self.type is int and isinstance(value, bool)):
            raise self._invalid(value, f"is not {_TYPES[self.type]}")
        if isinstance(value, float) and not math.isfinite(value):
            raise self._invalid(value, "is not a finite number")
        if self.choices is not None and value not in self.choices:
            raise self._invalid(
                value, "is not one of " + ", ".join(self.shown(c) for c in self.choices)
            )
        if self.min is not None and value < self.min:  # type: ignore[operator]
            raise self._invalid(value, f"is below the minimum of {self.shown(self.min)}")
        if self.max is not None and value > self.max:  # type: ignore[operator]
            raise self._invalid(value, f"is over the maximum of {self.shown(self.max)}")
        if self.validate is not None:
            try:
                verdict = self.validate(value)
            except (ValueError, TypeError) as exc:
                # A validator's own message may quote the value (int("sk-...", 16) does):
                # for a sensitive parameter only the verdict is shown.
                said = "" if self.sensitive else str(exc)
                raise self._invalid(value, said or "is not valid") from None
            if verdict is False:
                raise self._invalid(value, "is not valid")
        return value

    def parse(self, text: str) -> T:
        """A command-line word as this parameter's value (then ``check`` it)."""
        value: object
        try:
            if self.type is bool:
                word = text.strip().lower()
                if word not in _TRUE | _FALSE:
                    raise ValueError
                value = word in _TRUE
            elif self.type is int:
                value = int(text.replace("_", "").replace(",", ""))
            elif self.type is datetime:
                value = datetime.fromisoformat(text)
            else:
                value = self.type(text)  # type: ignore[call-arg]
        except ValueError:
            shown = MASK if self.sensitive else repr(text)
            raise InvalidParameter(f"{self.option}: {shown} is not {_TYPES[self.type]}") from None
        return self.check(value)

    def _invalid(self, value: object, why: str) -> InvalidParameter:
        return InvalidParameter(f"{self.option}: {self.shown(value)} {why}")

    # -- the stored form ---------------------------------------------------------------

    def stored(self, value: object, *, job: str) -> Any:
        """The value as the run keeps it (JSON): a sensitive one as its digest only."""
        if value is None:
            return None
        if self.sensitive:
            return digest(value, job=job, name=self.name)
        if isinstance(value, datetime):
            return value.isoformat()
        return value

    def from_stored(self, stored: Any) -> T | None:
        if stored is None:
            return None
        if self.type is datetime:
            return self.check(datetime.fromisoformat(stored))
        return self.check(stored)

    def help_line(self) -> str:
        """For ``runjob NAME --help``: the help, then what the option takes."""
        notes = []
        if self.required:
            notes.append("required for a new run")
        elif self.default is not None:
            default = self.default
            if callable(default):
                notes.append("default: set when the run is created")
            else:
                notes.append(f"default: {self.shown(default)}")
        if self.min is not None:
            notes.append(f"at least {self.shown(self.min)}")
        if self.max is not None:
            notes.append(f"at most {self.shown(self.max)}")
        if self.sensitive:
            notes.append("sensitive: never stored or shown in clear")
        text = self.help.rstrip(".")
        return f"{text} ({'; '.join(notes)})." if notes else f"{text}."


def digest(value: object, *, job: str, name: str) -> str:
    """A sensitive value as the run stores it: keyed with ``SECRET_KEY`` (someone who can
    read the run row cannot guess a short secret offline) and with the job and parameter
    names (the same value has a different digest elsewhere)."""
    shown = value.isoformat() if isinstance(value, datetime) else repr(value)
    message = f"{job}\x00{name}\x00{shown}".encode()
    key = str(settings.SECRET_KEY).encode()
    return _DIGEST + hmac.new(key, message, hashlib.sha256).hexdigest()


def collect(cls: type, reserved: Iterable[str]) -> dict[str, Param[Any]]:
    """The parameters a job class declares (its bases' included), checked once, when the
    class is defined: a default the parameter itself refuses, a required parameter with
    a default, or a name that is taken fails there, naming the fix."""
    found: dict[str, Param[Any]] = {}
    for klass in reversed(cls.__mro__):
        for name, value in vars(klass).items():
            if isinstance(value, Param):
                found[name] = value
    taken = set(reserved)
    where = cls.__qualname__
    for name, param in found.items():
        if param.type not in _TYPES:
            raise JobDefinitionError(
                f"{where}.{name}: a Param's type is one of int, float, str, bool, datetime."
            )
        no = f"no_{name}" if param.type is bool else ""
        if name in taken or no in taken or name.startswith("_"):
            raise JobDefinitionError(
                f"{where}.{name}: {param.option} is taken by runjob or the job class; "
                "rename the parameter."
            )
        if param.required and param.default is not None:
            raise JobDefinitionError(
                f"{where}.{name}: a required parameter has no default; drop one of the two."
            )
        default = param.default
        if default is not None and not callable(default):
            try:
                param.check(default)
            except InvalidParameter as exc:
                raise JobDefinitionError(f"{where}.{name}: the default is refused: {exc}") from None
    return found


@dataclass(frozen=True)
class Bound:
    """A job's parameter values: all of them, which were given (not defaults), and the
    run whose stored values filled in the others, if any."""

    values: Mapping[str, Any]
    given: frozenset[str]
    from_run: int | None = None


def bind(
    job: str,
    params: Mapping[str, Param[Any]],
    given: Mapping[str, Any],
    *,
    stored: Mapping[str, Any] | None = None,
    from_run: int | None = None,
) -> Bound:
    """Check ``given`` and fill in the rest: from ``stored`` (a run's stored form) when
    resuming, else from the defaults. ``InvalidParameter`` or ``MissingParameter`` says
    what is wrong, in one line that names the option."""
    unknown = sorted(set(given) - set(params))
    if unknown:
        takes = ", ".join(p.option for p in params.values()) or "no parameters"
        raise InvalidParameter(f"{job} has no parameter {unknown[0]!r} (it takes {takes}).")
    values: dict[str, Any] = {}
    for name, param in params.items():
        if name in given:
            values[name] = param.check(given[name])
        elif stored is not None and name in stored:
            values[name] = _restored(job, param, stored[name], from_run)
        elif param.required:
            raise MissingParameter(
                f"{job} needs {param.option} to start a run (`runjob {job} --help` lists its "
                "parameters)."
            )
        else:
            values[name] = param.check(param.default_value())
    return Bound(MappingProxyType(values), frozenset(given), from_run)


def _restored(job: str, param: Param[Any], stored: Any, run_id: int | None) -> Any:
    run = f"Run #{run_id}" if run_id is not None else "The run"
    again = f"give {param.option} again to continue it."
    if not param.sensitive:
        if isinstance(stored, str) and stored.startswith(_DIGEST):
            # Sensitive when the run began (the job changed since): the digest is not the
            # value, and must never become it.
            raise MissingParameter(
                f"{run} of {job} stored {param.option} as sensitive (not its value): {again}"
            )
        return param.from_stored(stored)
    default = param.default_value()
    if stored is None or param.stored(default, job=job) == stored:
        return default
    raise MissingParameter(
        f"{run} of {job} was started with a sensitive {param.option}, which is not stored: {again}"
    )


def stored_form(
    job: str, params: Mapping[str, Param[Any]], values: Mapping[str, Any]
) -> dict[str, Any]:
    """All the values as the run stores them (JSON; sensitive ones as digests)."""
    return {name: param.stored(values[name], job=job) for name, param in params.items()}


def differences(
    job: str,
    params: Mapping[str, Param[Any]],
    bound: Bound,
    stored: Mapping[str, Any],
) -> list[str]:
    """How the given values differ from a run's stored ones, one phrase each
    (``--days 30 (the run has 7)``); never a sensitive value."""
    found = []
    for name in sorted(bound.given):
        param = params[name]
        mine = param.stored(bound.values[name], job=job)
        if name not in stored:
            found.append(f"{param.option} (the run has none)")
        elif mine != stored[name]:
            if param.sensitive:
                found.append(f"{param.option} (not the value the run was started with)")
            else:
                theirs = param.from_stored(stored[name])
                found.append(
                    f"{param.option} {param.shown(bound.values[name])} "
                    f"(the run has {param.shown(theirs)})"
                )
    for name in sorted(set(stored) - set(params)):
        found.append(f"--{name.replace('_', '-')} (the run has it; {job} no longer takes it)")
    return found


def masked(stored: Mapping[str, Any]) -> dict[str, Any]:
    """A run's stored parameters as anything may show them (events, ``listjobs``, the
    admin): a sensitive one, stored as its digest, as ``****``. Needs no job class, so a
    run whose job module is gone shows the same."""
    return {
        name: MASK if isinstance(value, str) and value.startswith(_DIGEST) else value
        for name, value in stored.items()
    }


def as_flags(shown_values: Mapping[str, Any]) -> str:
    """``--days 30 --status open``: shown values as the options that give them, quoted
    for a shell (a masked one stays ``****``: the operator types it)."""
    words = []
    for name, value in sorted(shown_values.items()):
        if value is None:
            continue
        flag = "--" + name.replace("_", "-")
        if value is True:
            words.append(flag)
        elif value is False:
            words.append(f"--no-{name.replace('_', '-')}")
        else:
            text = str(value)
            words.append(f"{flag} {text if text == MASK else shlex.quote(text)}")
    return " ".join(words)
