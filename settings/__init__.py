"""Project settings. ``DATABASE_URL`` picks the database; unset means a SQLite file here.

PostgreSQL is the production target; SQLite is the embedded default so that a first
``make demo`` needs no server.
"""

from __future__ import annotations

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
