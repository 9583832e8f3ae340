"""Where jobs are found: every module of the packages in ``BATCHJOBS_JOB_PACKAGES``
(``jobs/`` here) and a ``jobs`` module in any installed app.

A module that fails to import is recorded, not raised: one broken job module must not
stop every other job (the token rotation in the middle of an incident, say). The
commands report it: ``listjobs`` lists it, ``runjob`` warns, and an unknown name says
which modules could not be read, since the job may be in one of them.
"""

from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass
from typing import TYPE_CHECKING

from django.apps import apps
from django.utils.module_loading import module_has_submodule

from batchjobs import conf
from batchjobs.exceptions import JobDefinitionError, UnknownJob
from batchjobs.retry import describe

if TYPE_CHECKING:
    from batchjobs.job import ResumableJob

_registry: dict[str, type[ResumableJob]] = {}
_broken: dict[str, BrokenModule] = {}
_discovered = False


@dataclass(frozen=True)
class BrokenModule:
    """A job module that raised when imported: its name, the exception's class and the
    first line of its message (truncated, as for any error the library reports)."""

    module: str
    error_class: str
    error: str

    def __str__(self) -> str:
        return f"module {self.module} failed to import: {self.error_class}: {self.error}"


def register(job_class: type[ResumableJob]) -> None:
    name = job_class.name
    existing = _registry.get(name)
    if existing is not None and _qualname(existing) != _qualname(job_class):
        raise JobDefinitionError(
            f"Two jobs are named {name!r}: {_qualname(existing)} and {_qualname(job_class)}; "
            "rename one."
        )
    _registry[name] = job_class


def unregister(name: str) -> None:
    _registry.pop(name, None)


def discover() -> None:
    global _discovered  # noqa: PLW0603 - a once-per-process import pass
    if _discovered:
        return
    for package_name in conf.get().JOB_PACKAGES:
        package = _import(package_name)
        if package is None:
            continue
        for module in pkgutil.iter_modules(getattr(package, "__path__", [])):
            if not module.name.startswith("_"):
                _import(f"{package_name}.{module.name}")
    # Django's autodiscover_modules("jobs"), one app at a time so that one app's broken
    # module does not hide the others'.
    for app_config in apps.get_app_configs():
        if module_has_submodule(app_config.module, "jobs"):
            _import(f"{app_config.name}.jobs")
    _discovered = True


def broken() -> list[BrokenModule]:
    """The job modules that failed to import, by module name."""
    discover()
    return [_broken[name] for name in sorted(_broken)]


def get(name: str) -> type[ResumableJob]:
    discover()
    try:
        return _registry[name]
    except KeyError:
        known = ", ".join(sorted(_registry)) or "none"
        notes = "".join(f" Note: {module}." for module in broken())
        raise UnknownJob(f"Unknown job {name!r}. Known jobs: {known}.{notes}") from None


def all_jobs() -> list[type[ResumableJob]]:
    discover()
    return [_registry[name] for name in sorted(_registry)]


def _import(module_name: str) -> object | None:
    try:
        return importlib.import_module(module_name)
    except Exception as exc:  # any error in a job module's code, not just ImportError
        _, message = describe(exc)  # the first line, never a database value
        _broken[module_name] = BrokenModule(module_name, type(exc).__qualname__, message)
        return None


def _qualname(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"
