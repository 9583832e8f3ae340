"""Where jobs are found: every module of the packages in ``BATCHJOBS_JOB_PACKAGES``
(``jobs/`` here) and a ``jobs`` module in any installed app."""

from __future__ import annotations

import importlib
import pkgutil
from typing import TYPE_CHECKING

from django.utils.module_loading import autodiscover_modules

from batchjobs import conf
from batchjobs.exceptions import JobDefinitionError, UnknownJob

if TYPE_CHECKING:
    from batchjobs.job import ResumableJob

_registry: dict[str, type[ResumableJob]] = {}
_discovered = False


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
        package = importlib.import_module(package_name)
        for module in pkgutil.iter_modules(getattr(package, "__path__", [])):
            if not module.name.startswith("_"):
                importlib.import_module(f"{package_name}.{module.name}")
    autodiscover_modules("jobs")
    _discovered = True


def get(name: str) -> type[ResumableJob]:
    discover()
    try:
        return _registry[name]
    except KeyError:
        known = ", ".join(sorted(_registry)) or "none"
        raise UnknownJob(f"Unknown job {name!r}. Known jobs: {known}.") from None


def all_jobs() -> list[type[ResumableJob]]:
    discover()
    return [_registry[name] for name in sorted(_registry)]


def _qualname(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"
