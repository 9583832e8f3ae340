"""Job parameters: declared on the class, checked when the job is made, offered by
``runjob NAME`` as options, stored with the run, compared on a resume, and never shown in
clear when sensitive. The job is the test app's ``tag_items`` (tests/testapp/jobs.py)."""

from __future__ import annotations

import io
import itertools
import json
from datetime import UTC, datetime
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.urls import reverse

from batchjobs import Param, ResumableJob
from batchjobs.arguments import RUNJOB_OPTIONS
from batchjobs.exceptions import (
    InvalidParameter,
    JobDefinitionError,
    MissingParameter,
    ParametersDiffer,
)
from batchjobs.models import JobRun, QuarantinedRow, State
from batchjobs.options import RunOptions
from batchjobs.parameters import MASK, bind
from batchjobs.runner import Runner
from tests.conftest import events_of
from tests.testapp.jobs import TagItems
from tests.testapp.models import Item

SECRET = "s3cr3t-api-key"
JOB = "tag_items"


def _call(*args: str) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    call_command(*args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def _interrupted(job: ResumableJob) -> JobRun:
    """An unfinished run of ``job``: --max-runtime over before the first chunk (the clock
    jumps 100 s at each reading)."""
    ticks = itertools.count(0, 100)
    outcome = Runner(job, RunOptions(max_runtime=1), clock=lambda: next(ticks)).run()
    assert outcome.exit_code
    run = JobRun.objects.get(job=job.name)
    assert run.state == State.INTERRUPTED
    return run


def _row(run: JobRun) -> dict[str, Any]:
    run.refresh_from_db()
    return {
        f.name: getattr(run, f.name)
        for f in JobRun._meta.concrete_fields
        if f.name not in ("heartbeat_at",)
    }


# -- declaring and checking ---------------------------------------------------------------


def test_param__values_on_the_instance_and_a_read_only_mapping() -> None:
    job = TagItems(title="hello", up_to=5)
    assert (job.title, job.status, job.up_to, job.shout, job.api_key) == (
        "hello",
        "open",
        5,
        False,
        None,
    )
    assert dict(job.params) == {
        "title": "hello",
        "status": "open",
        "up_to": 5,
        "shout": False,
        "api_key": None,
    }
    with pytest.raises(TypeError):
        job.params["title"] = "other"  # type: ignore[index]
    with pytest.raises(AttributeError):
        job.title = "other"
    assert TagItems.parameters["up_to"].option == "--up-to"


def test_param__a_job_without_parameters_is_made_with_no_arguments() -> None:
    from tests.testapp.jobs import RotateItemTokens  # noqa: PLC0415

    assert dict(RotateItemTokens().params) == {}
    assert RotateItemTokens().stored_parameters() == {}


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({}, "tag_items needs --title to start a run"),
        ({"title": 3}, "--title: 3 is not a string"),
        ({"title": "x", "up_to": 0}, "--up-to: 0 is below the minimum of 1"),
        ({"title": "x", "up_to": True}, "--up-to: True is not a whole number"),
        ({"title": "x", "status": "gone"}, "--status: 'gone' is not one of 'open', 'pending'"),
        ({"title": "x", "colour": "red"}, "tag_items has no parameter 'colour'"),
    ],
    ids=["missing", "type", "minimum", "bool-is-not-int", "choices", "unknown"],
)
def test_param__a_bad_value_is_refused_in_one_line_with_exit_2(
    values: dict[str, Any], message: str
) -> None:
    with pytest.raises(InvalidParameter) as caught:
        TagItems(**values)
    assert str(caught.value).startswith(message)
    assert "\n" not in str(caught.value)
    assert caught.value.exit_code == 2


def test_param__validate_min_max_and_types_parse_from_words() -> None:
    def even(value: int) -> None:
        if value % 2:
            raise ValueError("is not even")

    days = Param(int, validate=even, max=10)
    days.name = "days"
    assert days.parse("1_0") == 10
    with pytest.raises(InvalidParameter, match=r"^--days: 3 is not even$"):
        days.parse("3")
    with pytest.raises(InvalidParameter, match=r"^--days: 12 is over the maximum of 10$"):
        days.parse("12")
    with pytest.raises(InvalidParameter, match=r"^--days: 'x' is not a whole number$"):
        days.parse("x")
    ratio = Param(float)
    ratio.name = "ratio"
    assert ratio.check(2) == 2.0
    with pytest.raises(InvalidParameter, match="is not a finite number"):
        ratio.parse("nan")
    flag = Param(bool)
    flag.name = "flag"
    assert (flag.parse("yes"), flag.parse("off")) == (True, False)
    when = Param(datetime)
    when.name = "when"
    assert when.parse("2026-01-02T03:04:05") == datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def test_param__a_sensitive_value_is_never_in_an_error() -> None:
    key = Param(int, sensitive=True, min=1)
    key.name = "key"
    for attempt in (lambda: key.parse("12345abc"), lambda: key.check(-98765)):
        with pytest.raises(InvalidParameter) as caught:
            attempt()
        assert "12345" not in str(caught.value) and "98765" not in str(caught.value)
        assert MASK in str(caught.value)


def test_param__a_validators_message_quoting_a_sensitive_value_is_not_shown() -> None:
    key = Param(str, sensitive=True, validate=lambda v: int(v, 16))
    key.name = "api_key"
    with pytest.raises(InvalidParameter) as caught:
        key.parse("sk-live-SECRET123")
    assert str(caught.value) == f"--api-key: {MASK} is not valid"
    plain = Param(str, validate=lambda v: int(v, 16))
    plain.name = "colour"
    with pytest.raises(InvalidParameter, match="invalid literal for int"):
        plain.parse("red")  # a plain parameter keeps the validator's reason


@pytest.mark.parametrize(
    ("declaration", "message"),
    [
        ({"sleep": Param(float)}, "--sleep is taken by runjob or the job class"),
        ({"batch_size": Param(int)}, "--batch-size is taken by runjob or the job class"),
        ({"key": Param(str)}, "--key is taken by runjob or the job class"),
        ({"color": Param(bool)}, "--color is taken by runjob or the job class"),
        ({"days": Param(int, required=True, default=3)}, "a required parameter has no default"),
        ({"days": Param(int, default=0, min=1)}, "the default is refused: --days: 0 is below"),
        ({"ids": Param(list)}, "a Param's type is one of int, float, str, bool, datetime"),
    ],
    ids=[
        "sleep",
        "batch-size",
        "job-attribute",
        "no-color",
        "required-default",
        "bad-default",
        "type",
    ],
)
def test_param__a_misdeclared_parameter_fails_when_the_class_is_defined(
    registry_snapshot: Any, declaration: dict[str, Param[Any]], message: str
) -> None:
    with pytest.raises(JobDefinitionError, match=message.replace("(", r"\(")):
        type(
            "Misdeclared",
            (TagItems,),
            {"name": "misdeclared", "__module__": __name__, **declaration},
        )


def test_param__the_reserved_names_are_runjobs_options() -> None:
    from batchjobs.management.commands.runjob import Command  # noqa: PLC0415

    parser = Command().create_parser("manage.py", "runjob")
    assert {action.dest for action in parser._actions} == RUNJOB_OPTIONS


@pytest.mark.parametrize(
    "args",
    [
        [JOB],
        ["--batch-size", "5", JOB, "--title", "x"],
        ["--reason=INC-1", "--sql-side", JOB],
        ["--batch", "5", JOB],  # argparse's abbreviation of --batch-size
        ["-v", "2", JOB],
        ["--", JOB],
    ],
    ids=["alone", "after-an-option", "equals-and-flag", "abbreviated", "short", "dashes"],
)
def test_runjob__finds_the_job_name_before_parsing(args: list[str]) -> None:
    from batchjobs.arguments import job_name_in  # noqa: PLC0415
    from batchjobs.management.commands.runjob import Command  # noqa: PLC0415

    parser = Command().create_parser("manage.py", "runjob")
    assert job_name_in(parser, args) == JOB


def test_param__an_abstract_base_shares_its_parameters(registry_snapshot: Any) -> None:
    class Base(ResumableJob):
        abstract = True
        days = Param(int, default=3)

    class Child(Base):
        name = "child_with_days"
        description = "A job whose parameter comes from its base."
        label = Param(str, default="x")

        def get_queryset(self) -> Any:
            return Item.objects.all()

        def process(self, chunk: Any) -> int:
            return 0

    assert list(Child.parameters) == ["days", "label"]
    assert dict(Child(days=4).params) == {"days": 4, "label": "x"}


# -- stored with the run, compared on a resume ---------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_runner__stores_the_parameters_and_a_digest_for_a_sensitive_one(seed_items) -> None:
    seed_items(30)
    Runner(TagItems(title="hello", api_key=SECRET)).run()
    run = JobRun.objects.get(job=JOB)
    assert run.state == State.SUCCEEDED
    assert {k: v for k, v in run.parameters.items() if k != "api_key"} == {
        "title": "hello",
        "status": "open",
        "up_to": None,
        "shout": False,
    }
    assert run.parameters["api_key"].startswith("hmac-sha256:")
    assert SECRET not in json.dumps(run.parameters)
    assert Item.objects.filter(status="open").exclude(title="hello").count() == 0


@pytest.mark.django_db(transaction=True)
def test_runner__a_resume_without_parameters_runs_with_the_stored_ones(seed_items) -> None:
    seed_items(30)
    run = _interrupted(TagItems(title="later", status="pending"))
    # Given nothing but the required title, the job defaults to "open"; the run's "pending"
    # must win.
    Runner(TagItems(title="later")).run()
    run.refresh_from_db()
    assert run.state == State.SUCCEEDED
    assert run.parameters["status"] == "pending"
    assert set(Item.objects.filter(status="pending").values_list("title", flat=True)) == {"later"}
    assert not Item.objects.filter(status="open", title="later").exists()


@pytest.mark.django_db(transaction=True)
def test_runner__other_parameters_for_an_unfinished_run_are_refused_before_any_write(
    seed_items,
) -> None:
    seed_items(30)
    run = _interrupted(TagItems(title="first", up_to=20))
    before, titles = _row(run), sorted(Item.objects.values_list("title", flat=True))
    with pytest.raises(ParametersDiffer) as caught:
        Runner(TagItems(title="second", up_to=20, shout=True)).run()
    assert str(caught.value) == (
        f"Run #{run.pk} of tag_items was started with other parameters: --shout True (the "
        "run has False); --title 'second' (the run has 'first'). Continue it with the same "
        "ones (or none: `runjob tag_items` uses the run's), or abandon it and start over "
        "with: python manage.py runjob tag_items --restart --shout --title second --up-to 20"
    )
    assert caught.value.exit_code == 2
    assert _row(run) == before
    assert sorted(Item.objects.values_list("title", flat=True)) == titles


@pytest.mark.django_db(transaction=True)
def test_runner__a_sensitive_parameter_must_be_given_again_and_match(seed_items) -> None:
    seed_items(10)
    run = _interrupted(TagItems(title="t", api_key=SECRET))
    before = _row(run)
    with pytest.raises(MissingParameter, match="give --api-key again to continue it"):
        Runner(TagItems(title="t")).run()
    with pytest.raises(ParametersDiffer) as caught:
        Runner(TagItems(title="t", api_key="wrong-key")).run()
    assert "--api-key (not the value the run was started with)" in str(caught.value)
    assert "wrong-key" not in str(caught.value) and SECRET not in str(caught.value)
    assert _row(run) == before
    Runner(TagItems(title="t", api_key=SECRET)).run()
    run.refresh_from_db()
    assert run.state == State.SUCCEEDED


def test_bind__a_digest_stored_when_the_parameter_was_sensitive_is_never_a_value() -> None:
    """The job changed between start and resume (sensitive=True dropped): the run holds a
    digest, not the value, and must not run with the digest as its value."""
    was = Param(str, sensitive=True)
    was.name = "api_key"
    now = Param(str)
    now.name = "api_key"
    stored = {"api_key": was.stored(SECRET, job="tag_items")}
    with pytest.raises(MissingParameter, match=r"stored --api-key as sensitive .*give --api-key"):
        bind("tag_items", {"api_key": now}, {}, stored=stored, from_run=7)
    assert bind("tag_items", {"api_key": now}, {"api_key": "k"}, stored=stored).values == {
        "api_key": "k"
    }


# -- through runjob and listjobs -----------------------------------------------------------


def test_runjob__help_lists_the_jobs_parameters_as_options(cli) -> None:
    result = cli.run("runjob", JOB, "--help", env={"COLUMNS": "200"})  # no wrapping
    assert result.returncode == 0, result.stderr
    assert "parameters of tag_items:" in result.stdout
    for option in ("--title TITLE", "--status {open,pending,closed}", "--up-to UP_TO"):
        assert option in result.stdout
    assert "--shout, --no-shout" in result.stdout
    assert "sensitive: never stored or shown in clear" in result.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "tag_items needs --title to start a run"),
        (["--title", "x", "--up-to", "0"], "--up-to: 0 is below the minimum of 1"),
        (["--title", "x", "--up-to", "many"], "--up-to: 'many' is not a whole number"),
        (["--title", "x", "--api-key", SECRET, "--status", "no"], "--status: 'no' is not one"),
    ],
    ids=["missing", "minimum", "not-a-number", "choices"],
)
def test_runjob__a_bad_parameter_is_one_line_exit_2_and_nothing_written(
    cli, seed_items, args: list[str], message: str
) -> None:
    seed_items(5)
    result = cli.run("runjob", JOB, *args)
    assert result.returncode == 2, result.stderr
    (line,) = result.stderr.splitlines()
    assert line.startswith(f"CommandError: {message}")
    assert SECRET not in result.stderr + result.stdout
    assert not JobRun.objects.exists()
    assert not Item.objects.filter(title="x").exists()


def test_runjob__resume_with_other_parameters_is_refused_with_the_restart_command(
    cli, seed_items
) -> None:
    seed_items(5)
    run = _interrupted(TagItems(title="first"))
    before = _row(run)
    result = cli.run("runjob", JOB, "--title", "two words")
    assert result.returncode == 2
    (line,) = result.stderr.splitlines()
    assert "--title 'two words' (the run has 'first')" in line
    assert line.endswith("python manage.py runjob tag_items --restart --title 'two words'")
    assert _row(run) == before
    # Without the required --title, the run's is used.
    result = cli.run("runjob", JOB, "--log-format", "json")
    assert result.returncode == 0, result.stderr
    started = events_of(result.stdout)[0]
    assert started["event"] == "job.started"
    assert started["parameters"]["title"] == "first"
    assert set(Item.objects.filter(status="open").values_list("title", flat=True)) == {"first"}


@pytest.mark.django_db(transaction=True)
def test_commands__a_sensitive_value_is_in_no_event_listing_or_admin_page(
    seed_items, admin_client
) -> None:
    seed_items(5)
    out, err = _call("runjob", JOB, "--title", "t", "--api-key", SECRET, "--log-format", "json")
    started = events_of(out)[0]
    assert started["parameters"] == {
        "title": "t",
        "status": "open",
        "up_to": None,
        "shout": False,
        "api_key": MASK,
    }
    listed_json, _ = _call("listjobs", "--json")
    (entry,) = [e for e in json.loads(listed_json) if e["job"] == JOB]
    assert entry["runs"][0]["parameters"]["api_key"] == MASK
    detail, _ = _call("listjobs", JOB)
    assert "  parameters    --api-key **** --no-shout --status open --title t" in detail
    run = JobRun.objects.get(job=JOB)
    page = admin_client.get(reverse("admin:batchjobs_jobrun_change", args=[run.pk]))
    content = page.content.decode()
    assert "<th>api_key</th><td>****</td>" in content
    digest = run.parameters["api_key"]
    for text in (out, err, listed_json, detail, content):
        assert SECRET not in text
        assert digest not in text


@pytest.mark.parametrize("dry_run", [False, True], ids=["run", "dry-run"])
def test_commands__a_sensitive_value_quoted_by_the_jobs_own_error_is_masked(
    transactional_db, seed_items, dry_run: bool
) -> None:
    seed_items(5)
    args = ["runjob", JOB, "--title", "unreachable", "--api-key", SECRET, "--log-format", "json"]
    out, err = io.StringIO(), io.StringIO()
    with pytest.raises(CommandError) as caught:
        call_command(*args, *(["--dry-run"] if dry_run else []), stdout=out, stderr=err)
    said = str(caught.value) + out.getvalue() + err.getvalue()
    assert "could not post to https://hooks.example/?key=****" in said
    stored = json.dumps(
        list(JobRun.objects.values("error_message", "stats"))
        + list(QuarantinedRow.objects.values("error_message"))
    )
    assert SECRET not in said + stored
    if not dry_run:  # each row failed alone, and was set aside with the masked message
        messages = list(QuarantinedRow.objects.values_list("error_message", flat=True))
        assert messages
        assert all("key=****" in message for message in messages)


def test_runjob__call_command_takes_parameters_as_words(transactional_db, seed_items) -> None:
    seed_items(6)
    _call("runjob", JOB, "--title", "w", "--status", "closed", "--shout")
    assert set(Item.objects.filter(status="closed").values_list("title", flat=True)) == {"W"}
    with pytest.raises(CommandError, match=r"^--up-to: -1 is below the minimum of 1$"):
        _call("runjob", JOB, "--title", "w", "--up-to", "-1")
