"""The docs must be true: what the code defines, the docs list, and nothing else.

Each check reads a list the code defines (the commands' options, the settings, the event
names, the exit codes, the modules) and the place in the docs that lists it, and compares
them both ways. Something added to the code without its docs (or left in the docs after it
left the code) fails here with its name and where to write it. Also checked: relative links
and anchors, and that the writing-a-job guide shows real files.
"""

from __future__ import annotations

import ast
import dataclasses
import difflib
import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.core.management import load_command_class
from django.core.management.base import BaseCommand

from batchjobs import conf, events
from batchjobs.exit_codes import ExitCode

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
DOCS = ROOT / "docs"
OPERATIONS = DOCS / "operations.md"
EVENTS = DOCS / "events.md"
ARCHITECTURE = DOCS / "architecture.md"
GUIDE = DOCS / "writing-a-job.md"
CHANGELOG = DOCS / "changelog.md"
ALL_DOCS = [README, *sorted(DOCS.glob("*.md"))]

COMMANDS = ("runjob", "listjobs")
OPTIONS_SECTION = "## runjob and listjobs options"
SETTINGS_SECTION = "## Settings"
EXIT_CODES_SECTION = "## Exit codes"
EVENTS_SECTION = "## The events"

_FENCE = re.compile(r"^\s*```")
_HEADING = re.compile(r"^(#{1,6}) (.*)$")
_OPTION = re.compile(r"(?<![\w-])--[a-z][a-z0-9-]*")


# -- reading the docs ---------------------------------------------------------------------


def _rel(path: Path) -> str:
    return str(path.relative_to(ROOT))


def _lines(path: Path) -> list[tuple[int, str, bool]]:
    """``(line number, text, inside a fenced code block)`` for every line."""
    out, fenced = [], False
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if _FENCE.match(line):
            fenced = not fenced
            out.append((number, line, True))
            continue
        out.append((number, line, fenced))
    return out


def _heading_of(line: str, fenced: bool) -> tuple[int, str] | None:
    match = None if fenced else _HEADING.match(line)
    return (len(match[1]), match[2].strip()) if match else None


def _headings(path: Path) -> list[tuple[int, int, str]]:
    """``(line number, level, text)`` of the Markdown headings (not lines of code blocks)."""
    return [
        (number, *heading)
        for number, line, fenced in _lines(path)
        if (heading := _heading_of(line, fenced))
    ]


def _section(path: Path, *headings: str) -> list[tuple[int, str, bool]]:
    """The lines under the last of ``headings`` (e.g. ``"## Exit codes", "### `runjob`"``),
    each looked for under the one before, down to the next heading of its level or higher."""
    lines = _lines(path)
    for heading in headings:
        marks, title = heading.split(" ", 1)
        starts = [
            n for n, line, fenced in lines if _heading_of(line, fenced) == (len(marks), title)
        ]
        assert len(starts) == 1, (
            f"{_rel(path)} should have exactly one '{heading}' heading"
            + (f" under '{headings[0]}'" if heading != headings[0] else "")
            + f" (found {len(starts)}): tests/test_docs.py reads the reference from under it."
        )
        rest = [item for item in lines if item[0] > starts[0]]
        ends = [
            n for n, line, fenced in rest if (h := _heading_of(line, fenced)) and h[0] <= len(marks)
        ]
        lines = [item for item in rest if not ends or item[0] < ends[0]]
    return lines


def _table_rows(lines: list[tuple[int, str, bool]]) -> list[tuple[int, list[str]]]:
    """The body rows of the Markdown tables in ``lines``, as ``(line number, cells)``."""
    rows = []
    for number, line, fenced in lines:
        if fenced or not line.startswith("|"):
            continue
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if all(re.fullmatch(r":?-+:?", cell) for cell in cells):
            continue  # the separator
        rows.append((number, cells))
    # Every table's first row is its header: drop the rows whose next line is a separator.
    headers = {
        number - 1
        for number, line, fenced in lines
        if not fenced and re.fullmatch(r"\|(\s*:?-+:?\s*\|)+", line.strip())
    }
    return [(number, cells) for number, cells in rows if number not in headers]


def _code_spans(line: str) -> list[str]:
    return re.findall(r"`([^`]+)`", line)


# -- (a) the commands' options -------------------------------------------------------------


def _parser_options(command: str) -> set[str]:
    parser = load_command_class("batchjobs", command).create_parser("manage.py", command)
    return {s for action in parser._actions for s in action.option_strings if s.startswith("--")}


def _django_common_options() -> set[str]:
    parser = BaseCommand().create_parser("manage.py", "any")
    return {s for action in parser._actions for s in action.option_strings if s.startswith("--")}


def _documented_options(command: str) -> dict[str, int]:
    """``{option: line}`` from the tables under ``### `command` ``."""
    rows = _table_rows(_section(OPERATIONS, OPTIONS_SECTION, f"### `{command}`"))
    found = {}
    for number, cells in rows:
        match = re.match(r"`(--[a-z][a-z0-9-]*)", cells[0])
        if match:
            found[match[1]] = number
    return found


@pytest.mark.parametrize("command", COMMANDS)
def test_options__every_option_of_the_command_is_documented(command: str) -> None:
    own = _parser_options(command) - _django_common_options()
    missing = sorted(own - set(_documented_options(command)))
    assert not missing, (
        f"`{command}` has options that {_rel(OPERATIONS)} does not document: "
        f"{', '.join(missing)}. Add a row for each to a table under '{OPTIONS_SECTION}' > "
        f"'### `{command}`'."
    )


@pytest.mark.parametrize("command", COMMANDS)
def test_options__every_documented_option_exists(command: str) -> None:
    known = _parser_options(command)
    stale = {
        option: line for option, line in _documented_options(command).items() if option not in known
    }
    assert not stale, (
        f"{_rel(OPERATIONS)} documents `{command}` options the command does not have: "
        + ", ".join(f"{option} (line {line})" for option, line in sorted(stale.items()))
        + f". Known: {', '.join(sorted(known))}."
    )


def _command_examples() -> Iterator[tuple[Path, int, str, str]]:
    """``(doc, line, command, option)`` for every option given to runjob or listjobs in a
    code block or an inline code span of the docs."""
    for path in ALL_DOCS:
        for number, line, fenced in _lines(path):
            if fenced:
                if _FENCE.match(line):
                    continue
                candidates = [re.split(r"\s#\s", line)[0]]  # a shell comment is prose
            else:
                candidates = _code_spans(line)
            for text in candidates:
                parts = re.split(r"\b(runjob|listjobs)\b", text)
                for command, rest in zip(parts[1::2], parts[2::2], strict=True):
                    words = re.split(r"[|;&]", rest)[0]
                    for option in _OPTION.findall(words):
                        yield path, number, command, option


def _parameter_options() -> set[str]:
    """The options the registered jobs' parameters add to ``runjob NAME`` (``--days``,
    and ``--no-x`` for a boolean ``--x``)."""
    from batchjobs import registry  # noqa: PLC0415

    found = set()
    for job in registry.all_jobs():
        for param in job.parameters.values():
            found.add(param.option)
            if param.type is bool:
                found.add("--no-" + param.option[2:])
    return found


def test_options__examples_in_the_docs_use_real_options() -> None:
    known = {command: _parser_options(command) for command in COMMANDS}
    known["runjob"] |= _parameter_options()
    wrong = sorted(
        f"{_rel(path)}:{line}: `{command} {option}`"
        for path, line, command, option in _command_examples()
        if option not in known[command]
    )
    assert not wrong, "The docs show options the commands do not have:\n" + "\n".join(wrong)


# -- (b) settings -------------------------------------------------------------------------


def _settings() -> dict[str, object]:
    return {f"BATCHJOBS_{f.name}": f.default for f in dataclasses.fields(conf.Settings)}


def _documented_settings() -> dict[str, tuple[int, str]]:
    """``{name: (line, default as written)}`` from the table under '## Settings'."""
    found = {}
    for number, cells in _table_rows(_section(OPERATIONS, SETTINGS_SECTION)):
        match = re.fullmatch(r"`(BATCHJOBS_[A-Z0-9_]+)`", cells[0])
        if match:
            found[match[1]] = (number, cells[1].strip("`"))
    return found


def test_settings__every_setting_is_documented_with_its_default() -> None:
    settings, documented = _settings(), _documented_settings()
    missing = sorted(set(settings) - set(documented))
    assert not missing, (
        f"batchjobs/conf.py's Settings has settings that {_rel(OPERATIONS)} does not "
        f"document: {', '.join(missing)}. Add a row (setting, default, meaning) for each to "
        f"the table under '{SETTINGS_SECTION}'."
    )
    stale = sorted(
        f"{name} (line {documented[name][0]})" for name in set(documented) - set(settings)
    )
    assert not stale, (
        f"{_rel(OPERATIONS)} documents settings that batchjobs/conf.py's Settings does not "
        f"have: {', '.join(stale)}."
    )
    wrong = []
    for name, default in settings.items():
        line, written = documented[name]
        try:
            value = ast.literal_eval(written)
        except (ValueError, SyntaxError):
            value = written
        if isinstance(value, list):
            value = tuple(value)
        if value != default:
            wrong.append(f"{name} (line {line}): docs say `{written}`, the code {default!r}")
    assert not wrong, (
        f"Defaults in {_rel(OPERATIONS)} differ from batchjobs/conf.py:\n" + "\n".join(wrong)
    )


def _environment_variables_of_the_settings() -> set[str]:
    """``BATCHJOBS_*`` environment variables this project's settings module reads."""
    text = (ROOT / "settings" / "__init__.py").read_text(encoding="utf-8")
    return set(re.findall(r"""environ(?:\.get\(|\[)["'](BATCHJOBS_[A-Z0-9_]+)""", text))


def test_settings__every_BATCHJOBS_name_in_the_docs_is_a_setting() -> None:
    known = set(_settings()) | _environment_variables_of_the_settings()
    unknown = sorted(
        f"{_rel(path)}:{number}: {name}"
        for path in ALL_DOCS
        for number, line, _ in _lines(path)
        for name in re.findall(r"\bBATCHJOBS_[A-Z0-9_]*[A-Z0-9]\b", line)
        if name not in known
    )
    assert not unknown, (
        "The docs name BATCHJOBS_ settings that are neither fields of batchjobs/conf.py's "
        "Settings nor environment variables read by settings/__init__.py:\n" + "\n".join(unknown)
    )


# -- (c) events ---------------------------------------------------------------------------


# The families of event names: a run's (job.), a shared run's slices and workers (and not
# a module's name, `worker.py`).
_EVENT_NAME = r"(?:job|slice|worker)\.(?!py\b)[a-z_]+"


def _event_names() -> set[str]:
    return {
        value
        for name, value in vars(events).items()
        if name.isupper() and isinstance(value, str) and re.fullmatch(_EVENT_NAME, value)
    }


def _documented_events() -> dict[str, int]:
    """``{event: line}`` from the table under '## The events' in events.md."""
    found = {}
    for number, cells in _table_rows(_section(EVENTS, EVENTS_SECTION)):
        match = re.search(rf"`({_EVENT_NAME})`", cells[0])
        if match:
            found[match[1]] = number
    return found


def test_events__every_event_is_in_the_events_table() -> None:
    missing = sorted(_event_names() - set(_documented_events()))
    assert not missing, (
        f"batchjobs/events.py defines events that {_rel(EVENTS)} does not document: "
        f"{', '.join(missing)}. Add a row for each to the table under '{EVENTS_SECTION}' "
        "(and a section with its fields)."
    )


def test_events__every_documented_event_exists() -> None:
    known = _event_names()
    stale = sorted(
        f"{event} (line {line})"
        for event, line in _documented_events().items()
        if event not in known
    )
    assert not stale, (
        f"{_rel(EVENTS)} documents events that batchjobs/events.py does not define: "
        f"{', '.join(stale)}."
    )


def test_events__every_event_named_in_the_docs_exists() -> None:
    """Event names in code spans, JSON and jq filters anywhere in the docs (the changelog,
    which is history, aside)."""
    known = _event_names()
    unknown = sorted(
        f"{_rel(path)}:{number}: {name}"
        for path in ALL_DOCS
        if path != CHANGELOG
        for number, line, _ in _lines(path)
        for name in re.findall(rf"""(?<=[`"]){_EVENT_NAME}(?=[`"])""", line)
        if name not in known
    )
    assert not unknown, "The docs name events batchjobs/events.py does not define:\n" + "\n".join(
        unknown
    )


def test_events__json_examples_parse_and_name_real_events() -> None:
    known, problems = _event_names(), []
    in_json = False
    for number, line, fenced in _lines(EVENTS):
        if _FENCE.match(line):
            in_json = line.strip() == "```json"
            continue
        if not (fenced and in_json and line.strip()):
            continue
        try:
            event = json.loads(line)
        except json.JSONDecodeError as exc:
            problems.append(f"line {number}: not JSON ({exc})")
            continue
        name = event.get("event", "")
        if re.fullmatch(_EVENT_NAME, name) and name not in known:
            problems.append(f"line {number}: unknown event {name!r}")
    assert not problems, f"{_rel(EVENTS)}'s JSON examples:\n" + "\n".join(problems)


# -- (d) exit codes -----------------------------------------------------------------------


def _exit_code_rows(command: str) -> dict[int, tuple[int, str]]:
    """``{code: (line, name)}`` from the table under '## Exit codes' > '### `command`'."""
    rows = _table_rows(_section(OPERATIONS, EXIT_CODES_SECTION, f"### `{command}`"))
    found = {}
    for number, cells in rows:
        if re.fullmatch(r"\d+", cells[0]):
            found[int(cells[0])] = (number, cells[1].strip("`"))
    return found


def test_exit_codes__every_exit_code_is_in_the_runjob_table() -> None:
    documented = _exit_code_rows("runjob")
    missing = sorted(
        f"{code.value} {code.name}" for code in ExitCode if code.value not in documented
    )
    assert not missing, (
        f"batchjobs/exit_codes.py has exit codes that {_rel(OPERATIONS)} does not document: "
        f"{', '.join(missing)}. Add a row (code, name, when) for each to the table under "
        f"'{EXIT_CODES_SECTION}' > '### `runjob`'."
    )


@pytest.mark.parametrize("command", COMMANDS)
def test_exit_codes__every_documented_exit_code_exists(command: str) -> None:
    by_value = {code.value: code.name for code in ExitCode}
    wrong = [
        f"line {line}: {value} `{name}` (exit_codes.py: "
        + (f"{value} is {by_value[value]})" if value in by_value else f"no code {value})")
        for value, (line, name) in sorted(_exit_code_rows(command).items())
        if by_value.get(value) != name
    ]
    assert not wrong, (
        f"{_rel(OPERATIONS)}'s `{command}` exit codes differ from batchjobs/exit_codes.py:\n"
        + "\n".join(wrong)
    )


# -- (e) modules --------------------------------------------------------------------------


def _listed_paths(path: Path, heading: str) -> set[str]:
    """The files of the first tree drawing (a code block) under ``heading``, as paths: a
    name is a child of the directory two columns to its left."""
    section = _section(path, heading)
    block, inside = [], False
    for _, line, fenced in section:
        if _FENCE.match(line):
            if inside:
                break
            inside = True
            continue
        if inside and fenced:
            block.append(line)
    assert block, f"{_rel(path)} has no tree drawing (a code block) under '{heading}'."
    found: set[str] = set()
    stack: list[tuple[int, str]] = []  # (indent, directory path)
    for line in block:
        match = re.match(r"^( *)(\S+)", line)
        if not match:
            continue
        indent, name = len(match[1]), match[2]
        while stack and stack[-1][0] >= indent:
            stack.pop()
        if stack and indent != stack[-1][0] + 2:
            continue  # a description's second line
        if not stack and indent:
            continue
        full = (stack[-1][1] if stack else "") + name
        if name.endswith("/"):
            stack.append((indent, full))
        elif name.endswith(".py"):
            found.add(full)
    return found


MODULE_LISTS = [
    (README, "## Map of the repository", ["batchjobs/*.py"]),
    (
        ARCHITECTURE,
        "## Modules, one job each",
        ["batchjobs/*.py", "batchjobs/management/commands/*.py"],
    ),
]


@pytest.mark.parametrize(
    ("doc", "heading", "patterns"), MODULE_LISTS, ids=["README", "architecture"]
)
def test_modules__every_module_is_in_the_module_list(
    doc: Path, heading: str, patterns: list[str]
) -> None:
    listed = _listed_paths(doc, heading)
    modules = {
        _rel(p)
        for pattern in patterns
        for p in ROOT.glob(pattern)
        if not (p.name == "__init__.py" and not p.read_text(encoding="utf-8").strip())
    }  # an empty __init__.py only marks a package
    missing = sorted(modules - listed)
    assert not missing, (
        f"{_rel(doc)}'s module list (under '{heading}') misses: {', '.join(missing)}. Add a "
        "line for each, indented under its directory."
    )
    stale = sorted(p for p in listed if p.startswith("batchjobs/") and not (ROOT / p).exists())
    assert not stale, (
        f"{_rel(doc)}'s module list (under '{heading}') names modules that do not exist: "
        f"{', '.join(stale)}."
    )


# -- (f) links ----------------------------------------------------------------------------


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lowercase, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[^\w\- ]", "", heading.lower())
    return text.replace(" ", "-")


def _anchors(path: Path) -> set[str]:
    seen: dict[str, int] = {}
    anchors = set()
    for _, _, text in _headings(path):
        slug = _slug(text)
        count = seen.get(slug, 0)
        anchors.add(slug if count == 0 else f"{slug}-{count}")
        seen[slug] = count + 1
    return anchors


def test_links__relative_links_point_at_files_and_headings_that_exist() -> None:
    broken = []
    for path in ALL_DOCS:
        for number, line, fenced in _lines(path):
            if fenced:
                continue
            for target in re.findall(r"\]\(([^)\s]+)\)", line):
                if re.match(r"^[a-z][a-z0-9+.-]*:", target):
                    continue  # https:, mailto:
                file_part, _, anchor = target.partition("#")
                linked = (path.parent / file_part).resolve() if file_part else path
                where = f"{_rel(path)}:{number}: ({target})"
                if not linked.exists():
                    broken.append(f"{where}: no file {file_part}")
                elif anchor and linked.suffix == ".md" and anchor not in _anchors(linked):
                    broken.append(f"{where}: no heading with anchor #{anchor}")
    assert not broken, "Broken links in the docs:\n" + "\n".join(broken)


# -- the writing-a-job guide shows real code ----------------------------------------------

_NAMES_A_FILE = re.compile(r"^# (from )?(\S+\.py)$")


def _python_blocks(path: Path) -> list[tuple[int, list[str]]]:
    blocks, current, start = [], None, 0
    for number, line, _ in _lines(path):
        if current is None and line.strip() == "```python":
            current, start = [], number
        elif current is not None and _FENCE.match(line):
            blocks.append((start, current))
            current = None
        elif current is not None:
            current.append(line)
    return blocks


def test_guide__every_code_block_is_a_real_file_or_part_of_one() -> None:
    problems, whole_files = [], set()
    for start, lines in _python_blocks(GUIDE):
        match = _NAMES_A_FILE.match(lines[0]) if lines else None
        if not match:
            problems.append(
                f"line {start}: a python block that names no file; start it with "
                "'# path/to/file.py' (the whole file) or '# from path/to/file.py' (a part)"
            )
            continue
        excerpt, name = bool(match[1]), match[2]
        source = ROOT / name
        if not source.exists():
            problems.append(f"line {start}: {name} does not exist")
            continue
        shown = "\n".join(lines[1:]) + "\n"
        real = source.read_text(encoding="utf-8")
        if excerpt and shown not in real:
            problems.append(f"line {start}: this part of {name} is not in the file as shown")
        elif not excerpt and shown != real:
            diff = difflib.unified_diff(
                real.splitlines(), shown.splitlines(), name, "the guide", lineterm="", n=1
            )
            problems.append(
                f"line {start}: the guide's {name} differs from the file:\n" + "\n".join(diff)
            )
        if not excerpt:
            whole_files.add(name)
    assert not problems, f"{_rel(GUIDE)}:\n" + "\n".join(problems)
    expected = {
        "tests/docs_examples/jobs/trim_ticket_titles.py",
        "tests/docs_examples/test_trim_ticket_titles.py",
    }
    assert expected <= whole_files, (
        f"{_rel(GUIDE)} should show the example job and its tests whole: "
        f"{', '.join(sorted(expected - whole_files))}"
    )
