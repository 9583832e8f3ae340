"""Project settings. ``DATABASE_URL`` picks the database; unset means a SQLite file here.

PostgreSQL is the production target; SQLite is the embedded default so that a first
``make demo`` needs no server.
"""

from __future__ import annotations

import os
from pathlib import Path

import dj_database_url

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
DATABASES = {"default": dj_database_url.config(default=_SQLITE_DEFAULT, conn_max_age=0)}

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
