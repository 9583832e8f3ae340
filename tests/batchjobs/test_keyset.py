from __future__ import annotations

import uuid
from typing import Any

import pytest
from django.db import connection, models
from django.db.models import Exists, F, OuterRef
from django.test.utils import CaptureQueriesContext, isolate_apps

from batchjobs import keyset as keyset_module
from batchjobs.chunk import Chunk
from batchjobs.exceptions import JobDefinitionError
from batchjobs.keyset import Keyset, check_queryset, high_water_mark, key_field
from tests.testapp.models import Group, Item, Member, Note, Restaurant
from tests.testapp.seeding import seed_items

# -- the queryset a job may hand over ---------------------------------------------------


def test_check_queryset__accepts_a_filtered_queryset() -> None:
    check_queryset(Item.objects.filter(status="open").exclude(title=""))


@pytest.mark.parametrize(
    ("queryset", "says"),
    [
        (lambda: Item.objects.all()[:10], "sliced"),
        (lambda: Item.objects.all()[5:], "sliced"),
        (lambda: Item.objects.order_by("-id"), "order_by"),
        (lambda: Item.objects.order_by("title"), "drop the ordering"),
        (lambda: Item.objects.distinct(), "distinct()"),  # noqa: PLW0108
        (lambda: Item.objects.filter(pk=1).union(Item.objects.filter(pk=2)), "set operation"),
    ],
    ids=["sliced", "offset", "ordered", "ordered-by-other", "distinct", "union"],
)
def test_check_queryset__refuses_what_the_library_must_own(queryset, says: str) -> None:
    with pytest.raises(JobDefinitionError) as caught:
        check_queryset(queryset())
    assert says in str(caught.value)


# -- the key ------------------------------------------------------------------------------


def test_key_field__pk_and_unique_fields_are_keys() -> None:
    assert key_field(Item, "pk").name == "id"
    assert key_field(Item, "token").name == "token"


def test_key_field__refuses_a_non_unique_field() -> None:
    with pytest.raises(JobDefinitionError, match="key 'title' of Item must be a unique field"):
        key_field(Item, "title")


@isolate_apps("tests.testapp")
def test_key_field__refuses_a_nullable_unique_field() -> None:
    class Gadget(models.Model):  # noqa: DJ008
        serial = models.IntegerField(unique=True, null=True)

        class Meta:
            app_label = "testapp"

    with pytest.raises(JobDefinitionError, match="key 'serial' of Gadget must not be nullable"):
        key_field(Gadget, "serial")


def test_key_field__unknown_field_is_an_error() -> None:
    with pytest.raises(Exception, match="no field named 'nope'"):
        key_field(Item, "nope")


# -- planning chunks on the database -----------------------------------------------------


@pytest.fixture
def ids() -> list[int]:
    seed_items(25)
    return sorted(Item.objects.values_list("id", flat=True))


@pytest.mark.django_db
def test_next_keys__walks_the_keys_in_order_after_the_cursor(ids: list[int]) -> None:
    keyset = Keyset(Item.objects.all(), "pk", ids[-1])
    assert keyset.next_keys(after=None, limit=10) == ids[:10]
    assert keyset.next_keys(after=ids[9], limit=10) == ids[10:20]
    assert keyset.next_keys(after=ids[19], limit=10) == ids[20:]
    assert keyset.next_keys(after=ids[-1], limit=10) == []


@pytest.mark.django_db
def test_next_keys__stops_at_the_high_water_mark(ids: list[int]) -> None:
    keyset = Keyset(Item.objects.all(), "pk", ids[4])
    assert keyset.next_keys(after=None, limit=100) == ids[:5]


@pytest.mark.django_db
def test_next_keys__empty_table_has_no_high_water_mark_and_no_keys() -> None:
    keyset = Keyset(Item.objects.all(), "pk", high_water_mark(Item.objects.all(), "pk"))
    assert keyset.upto is None
    assert keyset.next_keys(after=None, limit=10) == []


@pytest.mark.django_db
def test_next_keys__keeps_the_job_filter(ids: list[int]) -> None:
    Item.objects.filter(pk__in=ids[::2]).update(title="even")
    queryset = Item.objects.filter(title="even")
    keyset = Keyset(queryset, "pk", high_water_mark(queryset, "pk"))
    assert keyset.next_keys(after=None, limit=100) == ids[::2]


@pytest.mark.django_db
def test_next_keys__seeks_with_a_range_and_limit_never_offset(ids: list[int]) -> None:
    keyset = Keyset(Item.objects.all(), "pk", ids[-1])
    with CaptureQueriesContext(connection) as queries:
        keyset.next_keys(after=ids[10], limit=5)
    (sql,) = [q["sql"] for q in queries.captured_queries]
    assert "OFFSET" not in sql.upper()
    assert "LIMIT 5" in sql.upper()
    assert '."id" >' in sql and "ORDER BY" in sql.upper()
    assert '"token"' not in sql  # keys only: memory is O(chunk), not O(row width)


@pytest.mark.django_db
def test_next_keys__walks_a_uuid_key_in_order(ids: list[int]) -> None:
    tokens = sorted(Item.objects.values_list("token", flat=True))
    keyset = Keyset(Item.objects.all(), "token", tokens[-1])
    first = keyset.next_keys(after=None, limit=10)
    assert first == tokens[:10]
    assert keyset.next_keys(after=first[-1], limit=100) == tokens[10:]


@pytest.mark.django_db
def test_high_water_mark__is_the_largest_key_of_the_queryset(ids: list[int]) -> None:
    assert high_water_mark(Item.objects.all(), "pk") == ids[-1]
    assert high_water_mark(Item.objects.filter(pk__lt=ids[3]), "pk") == ids[2]


@pytest.mark.django_db
def test_high_water_mark__of_a_uuid_key(ids: list[int], request) -> None:
    assert high_water_mark(Item.objects.all(), "token") == max(
        Item.objects.values_list("token", flat=True)
    )


# -- the checkpoint's JSON form ------------------------------------------------------------


def test_encode_decode__round_trips_integers_and_uuids() -> None:
    by_id = Keyset(Item.objects.all(), "pk", None)
    assert by_id.encode(42) == 42
    assert by_id.decode(42) == 42
    assert by_id.encode(None) is None and by_id.decode(None) is None
    by_token = Keyset(Item.objects.all(), "token", None)
    token = uuid.uuid4()
    assert by_token.encode(token) == str(token)
    assert by_token.decode(str(token)) == token


# -- a chunk -------------------------------------------------------------------------------


@pytest.mark.django_db
def test_chunk__knows_its_range_and_model(ids: list[int]) -> None:
    keyset = Keyset(Item.objects.filter(status="open"), "pk", ids[-1])
    chunk = Chunk(keys=ids[3:8], keyset=keyset)
    assert (len(chunk), chunk.first, chunk.last, chunk.model) == (5, ids[3], ids[7], Item)
    expected = set(Item.objects.filter(pk__in=ids[3:8], status="open").values_list("pk", flat=True))
    assert set(chunk.queryset.values_list("pk", flat=True)) == expected


@pytest.mark.django_db
def test_chunk__update_sets_values_on_its_rows_only(ids: list[int]) -> None:
    keyset = Keyset(Item.objects.all(), "pk", ids[-1])
    chunk = Chunk(keys=ids[3:8], keyset=keyset)
    assert chunk.update(title=[f"chunk-{i}" for i in range(5)], status="closed") == 5
    rows = dict(Item.objects.filter(title__startswith="chunk-").values_list("pk", "title"))
    assert rows == {pk: f"chunk-{i}" for i, pk in enumerate(ids[3:8])}
    assert set(Item.objects.filter(pk__in=ids[3:8]).values_list("status", flat=True)) == {"closed"}


# -- a filter across a to-many relation (tests.testapp) ----------------------------------


@pytest.fixture
def members() -> dict[str, list[int]]:
    """Ten members; the first four in groups a AND b, the next three in a, the last three in
    none. Members 0, 1 and 5 have two notes each."""
    a, b = Group.objects.create(name="a"), Group.objects.create(name="b")
    people = [Member.objects.create(name=f"m{i}") for i in range(10)]
    for person in people[:4]:
        person.groups.add(a, b)
    for person in people[4:7]:
        person.groups.add(a)
    for i in (0, 1, 5):
        Note.objects.bulk_create(Note(member=people[i], text=f"note {n}") for n in range(2))
    ids = [p.pk for p in people]
    return {"in_a_or_b": ids[:7], "with_notes": [ids[0], ids[1], ids[5]], "all": ids}


def _walk(keyset: Keyset, limit: int) -> list[Any]:
    walked, after = [], None
    while keys := keyset.next_keys(after=after, limit=limit):
        walked += keys
        after = keys[-1]
    return walked


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("queryset", "expected"),
    [
        (lambda: Member.objects.filter(groups__name__in=["a", "b"]), "in_a_or_b"),
        (lambda: Member.objects.filter(notes__text__startswith="note"), "with_notes"),
    ],
    ids=["many-to-many", "reverse-foreign-key"],
)
def test_keyset__a_filter_across_a_to_many_relation_plans_and_counts_each_row_once(
    members: dict[str, list[int]], queryset, expected: str
) -> None:
    rows = queryset()
    assert rows.count() > len(members[expected])  # the job's queryset repeats rows
    keyset = Keyset(rows, "pk", high_water_mark(rows, "pk"))
    assert keyset.bounded().count() == len(members[expected])  # the run's total
    for limit in (1, 2, 3, 100):
        assert _walk(keyset, limit) == members[expected]
    chunk = Chunk(keys=members[expected][:2], keyset=keyset)
    assert list(chunk.queryset.order_by("pk").values_list("pk", flat=True)) == chunk.keys


@pytest.mark.django_db
def test_keyset__chunk_queryset_of_a_to_many_filter_updates_and_deletes_each_row_once(
    members: dict[str, list[int]],
) -> None:
    rows = Member.objects.filter(groups__name__in=["a", "b"])
    keyset = Keyset(rows, "pk", high_water_mark(rows, "pk"))
    keys = members["in_a_or_b"]
    chunk = Chunk(keys=keys[:5], keyset=keyset)
    assert chunk.queryset.update(notified=F("notified") + 1) == 5
    assert chunk.update(name="seen") == 5
    notified = dict(Member.objects.values_list("pk", "notified"))
    assert [notified[k] for k in keys[:5]] == [1] * 5
    assert chunk.queryset.delete()[1]["testapp.Member"] == 5
    assert set(Member.objects.values_list("pk", flat=True)) == set(members["all"]) - set(keys[:5])


@pytest.mark.django_db
@pytest.mark.parametrize(
    "queryset",
    [
        lambda: Member.objects.all(),  # noqa: PLW0108
        lambda: Member.objects.filter(name__startswith="m"),
        lambda: Member.objects.exclude(groups__name="a"),  # a subquery, not a join
        lambda: Member.objects.filter(Exists(Note.objects.filter(member=OuterRef("pk")))),
        lambda: Note.objects.filter(member__name="m0"),  # a join to one row
        lambda: Restaurant.objects.filter(name="x"),  # the parent's table: one row
        lambda: Item.objects.all(),  # noqa: PLW0108
    ],
    ids=["all", "filter", "exclude", "exists", "to-one", "inherited", "items"],
)
def test_keyset__a_queryset_without_a_to_many_join_is_planned_as_it_is(queryset) -> None:
    rows = queryset()
    assert not keyset_module.joins_to_many(rows)
    keyset = Keyset(rows, "pk", 10)
    assert keyset.bounded().query.__str__() == rows.filter(pk__lte=10).query.__str__()


@pytest.mark.django_db
def test_next_keys__a_key_that_repeats_is_refused_naming_the_fix(
    members: dict[str, list[int]],
) -> None:
    # extra(tables=...) joins behind the ORM's back: no relation to see, and every member
    # comes out once per group.
    rows = Member.objects.extra(tables=["testapp_group"])
    keyset = Keyset(rows, "pk", high_water_mark(rows, "pk"))
    with pytest.raises(JobDefinitionError) as caught:
        keyset.next_keys(after=None, limit=10)
    assert not keyset_module.joins_to_many(rows)  # the guard caught it, not the planner
    message = str(caught.value)
    assert f"yields the key id={members['all'][0]!r} more than once" in message
    assert "Exists(...)" in message


def test_check_unique_keys__accepts_keys_in_any_database_order() -> None:
    # A collation may order "b" before "B" before "a": only a repeat is an error.
    keyset_module.check_unique_keys(["b", "B", "a", "A"], Member, "name")
    keyset_module.check_unique_keys([], Member, "name")
    with pytest.raises(JobDefinitionError):
        keyset_module.check_unique_keys([1, 2, 2, 3], Member, "id")
