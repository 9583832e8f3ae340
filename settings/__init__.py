"""Project settings. ``DATABASE_URL`` picks the database; unset means a SQLite file here.

PostgreSQL is the production target; SQLite is the embedded default so that a first
``make demo`` needs no server.
"""

from __future__ import annotations

import importlib.util
import os
import re
import urllib.parse
from pathlib import Path
from typing import Any

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent

SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "insecure-dev-key-not-for-production")
DEBUG = os.environ.get("DJANGO_DEBUG", "") == "1"
ALLOWED_HOSTS = ["*"]

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    # The admin's CSS and JavaScript (and batchjobs' own): `runserver` serves them when
    # DEBUG is on; a deployment runs `collectstatic` into STATIC_ROOT.
    "django.contrib.staticfiles",
    "batchjobs",
    "tickets",
    # The Tasks framework's database backend keeps its tasks in a table of its own: installed
    # whichever backend is chosen, so the schema never depends on an environment variable.
    "django_tasks_db",
]

MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]

ROOT_URLCONF = "settings.urls"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ]
        },
    }
]

_SQLITE_DEFAULT = f"sqlite:///{BASE_DIR / 'db.sqlite3'}"
_URL_SHAPE = "postgres://USER:PASSWORD@HOST:PORT/NAME or sqlite:////path/to/file.sqlite3"
_SCHEMES = ("postgres", "postgresql", "pgsql", "sqlite")
_ENCODE_HINT = (
    "; a user or password holding ':', '/', '@', '?', '#' or '[' must be percent-encoded "
    "(urllib.parse.quote)"
)
# A database that accepts the connection and never answers (a half-open firewall, a
# stuck proxy) must not hang a command for ever: libpq waits this long per address.
_CONNECT_TIMEOUT_SECONDS = 5


def _bad_url(part: str) -> ImproperlyConfigured:
    return ImproperlyConfigured(f"DATABASE_URL is malformed: {part}.")


def _database_from_url(url: str) -> dict[str, Any]:
    """``DATABASES["default"]`` from ``DATABASE_URL``, or an error naming the wrong part.

    The error never repeats the URL, nor any part of it but a well-formed scheme: in a
    malformed URL the password can end up anywhere (a missing ':' makes it a path, an
    unencoded '/' makes it a port), so masking the password field is not enough.
    """
    if not url.strip():
        raise _bad_url(
            f"it is set but empty (unset it to use the local SQLite file, or give {_URL_SHAPE})"
        )
    scheme, has_scheme, _ = url.partition("://")
    if not has_scheme or not re.fullmatch(r"[A-Za-z][A-Za-z0-9+.-]{0,19}", scheme):
        raise _bad_url(f"it does not start with a scheme and '://' (expected {_URL_SHAPE})")
    if scheme.lower() not in _SCHEMES:
        raise _bad_url(f"its scheme {scheme!r} is not one of {', '.join(_SCHEMES)}")
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:
        raise _bad_url(
            f"its host is not a name, an IPv4 address or an [IPv6] address{_ENCODE_HINT}"
        ) from None
    try:
        parts.port  # noqa: B018 - urllib checks the port only when it is read
    except ValueError:
        raise _bad_url(
            f"its port (after the host's last ':') is not a number from 0 to 65535{_ENCODE_HINT}"
        ) from None
    try:
        database = dict(dj_database_url.parse(url, conn_max_age=0))
    except ValueError:
        raise _bad_url(f"it could not be parsed{_ENCODE_HINT}") from None
    if database["ENGINE"] == "django.db.backends.postgresql" and not database.get("NAME"):
        raise _bad_url("it names no database (add /NAME after the host)")
    return database


def _connect_timeout() -> int:
    text = os.environ.get("BATCHJOBS_CONNECT_TIMEOUT", "").strip()
    if not text:
        return _CONNECT_TIMEOUT_SECONDS
    if not text.isdigit() or int(text) < 1:
        raise ImproperlyConfigured(
            "BATCHJOBS_CONNECT_TIMEOUT must be a whole number of seconds, at least 1."
        )
    return int(text)


DATABASES = {"default": _database_from_url(os.environ.get("DATABASE_URL", _SQLITE_DEFAULT))}
_connect_timeout_seconds = _connect_timeout()  # checked on SQLite too: a typo is loud

if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    # ?connect_timeout=N in the URL wins over the environment and the default.
    DATABASES["default"].setdefault("OPTIONS", {}).setdefault(
        "connect_timeout", _connect_timeout_seconds
    )

if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {
            # WAL lets `listjobs` and the admin read while a run writes; IMMEDIATE takes the
            # write lock at BEGIN so two writers queue instead of deadlocking on upgrade.
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
            "transaction_mode": "IMMEDIATE",
            "timeout": 20,
        }
    )
    # The tests run real processes against the test database, so it must be a file.
    DATABASES["default"]["TEST"] = {"NAME": str(BASE_DIR / ".test.sqlite3")}

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
USE_TZ = True
TIME_ZONE = "UTC"
STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"

# Logging is set up per command by batchjobs.events so that Django's own records and the
# job's events share one renderer (JSON lines or the terminal line).
LOGGING_CONFIG = None

# Back off while replicas lag or the application waits on locks (docs/operations.md).
BATCHJOBS_HEALTH_CHECKS = ["batchjobs.health.ReplicationLag", "batchjobs.health.LockWaits"]

# Packages whose modules are jobs. The tests add their scenario jobs through the environment.
BATCHJOBS_JOB_PACKAGES = [
    "jobs",
    *filter(None, os.environ.get("BATCHJOBS_EXTRA_JOB_PACKAGES", "").split(",")),
]

# -- Django's Tasks framework: where `runjob --enqueue` puts its workers (docs/operations.md)

# The queue batchjobs' tasks go to (BATCHJOBS_TASK_QUEUE), apart from the application's own
# short tasks, so a long run never delays them and its workers can be started on their own.
BATCHJOBS_TASK_QUEUE = "batchjobs"
_TASKS_BACKENDS = ("database", "rq", "immediate")
# Django 6 has the framework built in; before it, the backport (django-tasks) is it.
_TASKS_PACKAGE = "django.tasks" if importlib.util.find_spec("django.tasks") else "django_tasks"


def _tasks_from_environment() -> tuple[dict[str, Any], list[str], dict[str, Any]]:
    """``TASKS``, the apps its backend needs, and django-rq's ``RQ_QUEUES``, from
    ``BATCHJOBS_TASKS_BACKEND`` (database, the default; rq; immediate) and ``REDIS_URL``."""
    name = os.environ.get("BATCHJOBS_TASKS_BACKEND", "").strip().lower() or "database"
    queues = ["default", BATCHJOBS_TASK_QUEUE]
    if name == "database":
        backend = {"BACKEND": "django_tasks_db.DatabaseBackend", "QUEUES": queues}
        return {"default": backend}, [], {}
    if name == "immediate":
        # Runs each task at once, in the process that enqueues it: for tests and trials.
        backend = {"BACKEND": f"{_TASKS_PACKAGE}.backends.immediate.ImmediateBackend"}
        return {"default": {**backend, "QUEUES": queues}}, [], {}
    if name == "rq":
        if importlib.util.find_spec("django_tasks_rq") is None:
            raise ImproperlyConfigured(
                "BATCHJOBS_TASKS_BACKEND=rq needs django-tasks-rq: pip install 'batchjobs[rq]'."
            )
        url = os.environ.get("REDIS_URL", "").strip() or "redis://127.0.0.1:6379/0"
        # RQ kills a job after its queue's timeout (180 s unless told): mid-chunk, its slice
        # left to go stale. A task bounds itself (BATCHJOBS_TASK_MAX_SECONDS, the per-chunk
        # statement timeouts), so RQ is told never to (-1).
        rq_queues = {q: {"URL": url, "DEFAULT_TIMEOUT": -1} for q in queues}
        backend = {"BACKEND": "django_tasks_rq.RQBackend", "QUEUES": queues}
        return {"default": backend}, ["django_rq"], rq_queues
    raise ImproperlyConfigured(
        f"BATCHJOBS_TASKS_BACKEND is {name!r}, which is not one of {', '.join(_TASKS_BACKENDS)}."
    )


TASKS, _tasks_apps, RQ_QUEUES = _tasks_from_environment()
# The backport is an app (its system checks of TASKS); Django 6's framework needs none.
INSTALLED_APPS += ["django_tasks"] if _TASKS_PACKAGE == "django_tasks" else []
INSTALLED_APPS += _tasks_apps
# `rqworker` runs Django's tasks only with django-tasks-rq's job class; set here, the
# command needs no --job-class.
RQ = {"JOB_CLASS": "django_tasks_rq.Job"}
