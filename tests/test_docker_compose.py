"""``docker-compose.yml``: PostgreSQL plus the app, which migrates, seeds and rotates.

Docker is not needed: the file is read as data and every ``manage.py`` call in the app's
command is parsed by the real command's own argument parser.
"""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from django.core.management import get_commands, load_command_class

from batchjobs import registry

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = ROOT / "docker-compose.yml"
DATABASE_URL = "postgres://postgres:postgres@db:5432/batchjobs"


@pytest.fixture(scope="module")
def services() -> dict[str, Any]:
    assert COMPOSE.is_file(), f"{COMPOSE.name} is missing at the top of the checkout"
    data = yaml.safe_load(COMPOSE.read_text())
    assert isinstance(data, dict) and isinstance(data.get("services"), dict)
    return data["services"]


def _environment(service: dict[str, Any]) -> dict[str, str]:
    """Compose takes a mapping or a list of KEY=VALUE strings."""
    env = service.get("environment") or {}
    if isinstance(env, list):
        return dict(item.split("=", 1) for item in env)
    return {key: str(value) for key, value in env.items()}


def _script(command: str | list[str]) -> str:
    """The shell text of a service's command (unwrapping ``sh -c "..."``)."""
    words = shlex.split(command) if isinstance(command, str) else list(command)
    if len(words) >= 3 and Path(words[0]).name in {"sh", "bash"} and words[1] == "-c":
        return words[2]
    return shlex.join(words)


def _steps(command: str | list[str]) -> list[list[str]]:
    """The command as its ``&&``-joined steps, each a list of words."""
    lexer = shlex.shlex(_script(command), posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    steps: list[list[str]] = [[]]
    for word in lexer:
        assert word not in {";", "||", "&", "|"}, (
            f"steps must be joined with && so that a failure stops the rest, found {word!r}"
        )
        if word == "&&":
            steps.append([])
        else:
            steps[-1].append(word)
    return steps


def _manage_py_calls(command: str | list[str]) -> list[tuple[str, list[str]]]:
    calls = []
    for step in _steps(command):
        if "manage.py" in step:
            at = step.index("manage.py")
            assert Path(step[0]).name.startswith("python"), step
            calls.append((step[at + 1], step[at + 2 :]))
    return calls


def test_docker_compose__db_is_postgres_with_a_healthcheck(services) -> None:
    db = services["db"]
    assert str(db["image"]).split(":")[0].rsplit("/", 1)[-1] == "postgres"
    test = db["healthcheck"]["test"]
    text = test if isinstance(test, str) else " ".join(test)
    assert "pg_isready" in text


def test_docker_compose__app_runs_this_checkout(services) -> None:
    app = services["app"]
    build = app.get("build")
    if build is not None:
        context = build if isinstance(build, str) else build.get("context", ".")
        dockerfile = (
            "Dockerfile" if isinstance(build, str) else build.get("dockerfile", "Dockerfile")
        )
        assert Path(context) in {Path("."), Path("./")}
        assert (ROOT / context / dockerfile).is_file(), f"{dockerfile} is missing"
    else:  # an image of Python with the checkout mounted where the command runs
        assert "python" in str(app["image"])
        mounts = {str(v).split(":")[1] for v in app.get("volumes", []) if str(v).startswith(".:")}
        assert app.get("working_dir") in mounts


def test_docker_compose__app_waits_for_a_healthy_db(services) -> None:
    depends = services["app"]["depends_on"]
    assert isinstance(depends, dict), "depends_on must name the condition, not only the service"
    assert depends["db"]["condition"] == "service_healthy"


def test_docker_compose__app_database_url_matches_the_db_service(services) -> None:
    url = _environment(services["app"])["DATABASE_URL"]
    assert url == DATABASE_URL
    parts = urlsplit(url)
    db_env = _environment(services["db"])
    user = db_env.get("POSTGRES_USER", "postgres")
    assert parts.hostname in services
    assert (parts.username, parts.password) == (user, db_env["POSTGRES_PASSWORD"])
    assert parts.path.lstrip("/") == db_env.get("POSTGRES_DB", user)


def test_docker_compose__app_migrates_seeds_then_rotates(services) -> None:
    calls = _manage_py_calls(services["app"]["command"])
    names = [name for name, _ in calls]
    wanted = ["migrate", "seed_tickets", "runjob"]
    assert [n for n in names if n in wanted] == wanted, names
    seed_args = dict(calls)["seed_tickets"]
    assert "--total" in seed_args, "--total makes a second `up` add no rows"
    assert int(seed_args[seed_args.index("--total") + 1]) > 0
    assert dict(calls)["runjob"][0] == "rotate_ticket_tokens"


def test_docker_compose__every_manage_py_call_parses(services) -> None:
    available = get_commands()
    for name, args in _manage_py_calls(services["app"]["command"]):
        assert name in available, f"manage.py has no {name!r} command"
        command = load_command_class(available[name], name)
        options = vars(command.create_parser("manage.py", name).parse_args(args))
        if name == "runjob":
            registry.get(options["name"])
