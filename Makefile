# The two commands of the README, and the few that support them.
#   make demo   creates .venv, migrates the embedded SQLite database, seeds 100,000
#               tickets and rotates their tokens with `manage.py runjob`.
#   make test   creates .venv, lints (ruff, mypy), runs the whole suite on SQLite, then on
#               PostgreSQL.
#   make test-django6   the suite on Django 6.1 and Python 3.13 (.venv-django6): the whole
#               SQLite pass, then the PostgreSQL fault tests. .ci/run runs it after make test.
#               PostgreSQL: $DATABASE_URL if it is a postgres:// URL, else 127.0.0.1:5432
#               if it answers, else a throwaway cluster from local PostgreSQL binaries.
#               e.g.  make test DATABASE_URL=postgres://user:pass@host:5432/anydb

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
ROWS ?= 100000
PYTEST_ARGS ?=
# Test processes side by side (pytest-xdist). The fault tests mostly wait on real processes,
# sleeps and timeouts, so three share two cores well: each pass takes about 2.5 minutes
# instead of 6. TEST_WORKERS=0 runs the suite in one process.
TEST_WORKERS ?= 3
XDIST := -n $(TEST_WORKERS)

.PHONY: demo test test-sqlite test-postgres test-django6 lint bench clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11+ is needed (set PYTHON=python3.11 or newer).")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	@touch $@

demo: $(STAMP)
	env -u DATABASE_URL $(BIN)/python manage.py migrate --noinput --verbosity 0
	env -u DATABASE_URL $(BIN)/python manage.py seed_tickets --total $(ROWS)
	env -u DATABASE_URL $(BIN)/python manage.py runjob rotate_ticket_tokens
	env -u DATABASE_URL $(BIN)/python manage.py listjobs

test: lint test-sqlite test-postgres

# mypy (strict, configured in pyproject.toml) imports the settings for the django-stubs
# plugin: types never depend on the database, so DATABASE_URL has no say in it.
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	env -u DATABASE_URL $(BIN)/mypy

test-sqlite: $(STAMP)
	@echo "== The suite on SQLite (PostgreSQL-only tests are skipped here and run below) =="
	env -u DATABASE_URL $(BIN)/python -m pytest $(XDIST) $(PYTEST_ARGS)

test-postgres: $(STAMP)
	@echo "== The suite on PostgreSQL =="
	$(BIN)/python -m tests.support.with_postgres $(BIN)/python -m pytest $(XDIST) $(PYTEST_ARGS)

# Django 6.1 needs Python 3.12+: PYTHON313 if given, else pyenv's 3.13, else python3.13.
VENV6 := .venv-django6
ifndef PYTHON313
PYTHON313 := $(shell { pyenv prefix 3.13 2>/dev/null | sed 's|$$|/bin/python3.13|'; \
	command -v python3.13; } 2>/dev/null | while read -r p; do "$$p" -V >/dev/null 2>&1 && echo "$$p" && break; done)
endif

$(VENV6)/.installed: pyproject.toml
	@test -n "$(PYTHON313)" || { echo "No Python 3.13 for the Django 6 pass: install it (pyenv install 3.13) or set PYTHON313=/path/to/python3.13"; exit 1; }
	$(PYTHON313) -m venv $(VENV6)
	$(VENV6)/bin/pip install --quiet --upgrade pip
	$(VENV6)/bin/pip install --quiet -e '.[test]' 'Django>=6.1,<6.2'
	@touch $@

test-django6: $(VENV6)/.installed
	@echo "== Django $$($(VENV6)/bin/python -c 'import django; print(django.get_version())') on Python $$($(VENV6)/bin/python -V | cut -d' ' -f2): the suite on SQLite =="
	env -u DATABASE_URL $(VENV6)/bin/python -m pytest $(XDIST) $(PYTEST_ARGS)
	@echo "== Django 6: the fault tests on PostgreSQL =="
	$(VENV6)/bin/python -m tests.support.with_postgres $(VENV6)/bin/python -m pytest $(XDIST) tests/faults $(PYTEST_ARGS)

# Speed and memory, side by side (PostgreSQL), found like test-postgres finds it:
#   make bench BENCH_ARGS="--rows 200000 --repeat 3"    (python -m tests.bench --help)
# runs `python -m tests.bench` (the package tests/bench/), which seeds the tickets table
# and starts `manage.py runjob` processes. It empties the tickets table.
BENCH_ARGS ?=
bench: $(STAMP)
	$(BIN)/python -m tests.support.with_postgres $(BIN)/python -m tests.bench $(BENCH_ARGS)

clean:
	rm -rf $(VENV) $(VENV6) db.sqlite3 db.sqlite3-* .test.sqlite3* .pytest_cache .ruff_cache .mypy_cache
