"""``update_by_key`` on the database the suite runs on (SQLite, then PostgreSQL)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.db import connection, reset_queries
from django.db.models import F, Value
from django.db.models.functions import Concat, Now, Upper

from batchjobs import update_by_key
from batchjobs.bulk import _update_bulk_update
from batchjobs.models import JobRun
from tests.testapp.models import Item, Pizzeria, Place, Restaurant
from tests.testapp.seeding import seed_items

pytestmark = pytest.mark.django_db


@pytest.fixture
def ids() -> list[int]:
    seed_items(20)
    return sorted(Item.objects.values_list("id", flat=True))


def _new_tokens(count: int) -> list[uuid.UUID]:
    return [uuid.uuid4() for _ in range(count)]


def _column(name: str, keys: list[int]) -> list[object]:
    values = dict(Item.objects.filter(pk__in=keys).values_list("pk", name))
    return [values[k] for k in keys]


def test_update_by_key__per_row_list_gives_each_key_its_own_value(ids: list[int]) -> None:
    keys = ids[2:12]
    tokens = _new_tokens(len(keys))
    assert update_by_key(Item, key="pk", keys=keys, values={"token": tokens}) == 10
    assert _column("token", keys) == tokens


def test_update_by_key__keys_in_any_order_match_their_values(ids: list[int]) -> None:
    keys = [ids[7], ids[1], ids[4]]
    update_by_key(Item, key="pk", keys=keys, values={"title": ("seven", "one", "four")})
    assert _column("title", keys) == ["seven", "one", "four"]


def test_update_by_key__leaves_other_rows_and_columns_alone(ids: list[int]) -> None:
    before = {t.pk: (t.token, t.title, t.status) for t in Item.objects.all()}
    keys = ids[5:8]
    update_by_key(Item, key="pk", keys=keys, values={"title": ["a", "b", "c"]})
    for item in Item.objects.all():
        token, title, status = before[item.pk]
        assert (item.token, item.status) == (token, status)
        if item.pk not in keys:
            assert item.title == title


def test_update_by_key__constant_applies_to_every_row(ids: list[int]) -> None:
    Item.objects.update(status="open")
    keys = ids[:6]
    assert update_by_key(Item, key="pk", keys=keys, values={"status": "closed"}) == 6
    assert set(_column("status", keys)) == {"closed"}
    assert set(_column("status", ids[6:])) == {"open"}


def test_update_by_key__database_expression_applies_to_every_row(ids: list[int]) -> None:
    old = datetime(2000, 1, 1, tzinfo=UTC)
    Item.objects.update(token_issued_at=old)
    keys = ids[:5]
    assert update_by_key(Item, key="pk", keys=keys, values={"token_issued_at": Now()}) == 5
    recent = datetime.now(UTC) - timedelta(hours=1)
    assert all(t > recent for t in _column("token_issued_at", keys))
    assert set(_column("token_issued_at", ids[5:])) == {old}


def test_update_by_key__expression_may_read_the_row_itself(ids: list[int], request) -> None:
    keys = ids[:3]
    titles = _column("title", keys)
    update_by_key(Item, key="pk", keys=keys, values={"title": Concat(F("title"), Value("!"))})
    assert _column("title", keys) == [f"{t}!" for t in titles]


def test_update_by_key__per_row_values_constants_and_expressions_together(ids: list[int]) -> None:
    keys = ids[:4]
    tokens = _new_tokens(4)
    changed = update_by_key(
        Item,
        key="pk",
        keys=keys,
        values={"token": tokens, "status": "pending", "title": Upper(Value("x"))},
    )
    assert changed == 4
    assert _column("token", keys) == tokens
    assert set(_column("status", keys)) == {"pending"}
    assert set(_column("title", keys)) == {"X"}


def test_update_by_key__text_values_with_array_syntax_characters(ids: list[int]) -> None:
    awkward = ["a,b", 'say "hi"', "{braces}", "NULL", "back\\slash", "it's", "ünï cödé", ""]
    keys = ids[: len(awkward)]
    update_by_key(Item, key="pk", keys=keys, values={"title": awkward})
    assert _column("title", keys) == awkward


def test_update_by_key__integer_columns() -> None:
    runs = [JobRun.objects.create(job=f"job{i}", state="succeeded") for i in range(3)]
    keys = [r.pk for r in runs]
    changed = update_by_key(
        JobRun, key="pk", keys=keys, values={"done": [10**12, 0, -5], "chunks": [1, 2, 3]}
    )
    assert changed == 3
    rows = dict(JobRun.objects.values_list("pk", "done"))
    assert [rows[k] for k in keys] == [10**12, 0, -5]
    assert list(JobRun.objects.order_by("pk").values_list("chunks", flat=True)) == [1, 2, 3]


def test_update_by_key__per_row_datetimes(ids: list[int]) -> None:
    keys = ids[:3]
    when = [datetime(2020, 1, d, 12, tzinfo=UTC) for d in (1, 2, 3)]
    update_by_key(Item, key="pk", keys=keys, values={"token_issued_at": when})
    assert _column("token_issued_at", keys) == when


def test_update_by_key__uuid_key(ids: list[int]) -> None:
    keys = ids[:3]
    tokens = _column("token", keys)
    changed = update_by_key(
        Item, key="token", keys=tokens, values={"title": ["one", "two", "three"]}
    )
    assert changed == 3
    assert _column("title", keys) == ["one", "two", "three"]


def test_update_by_key__rowcount_counts_only_rows_that_exist(ids: list[int]) -> None:
    keys = [ids[0], ids[1], ids[-1] + 1_000]
    assert update_by_key(Item, key="pk", keys=keys, values={"title": ["a", "b", "c"]}) == 2


def test_update_by_key__bounds_of_the_chunk_change_nothing_about_the_result(ids: list[int]):
    keys = ids[3:9]
    tokens = _new_tokens(len(keys))
    changed = update_by_key(
        Item, key="pk", keys=keys, values={"token": tokens}, bounds=(keys[0], keys[-1])
    )
    assert changed == 6
    assert _column("token", keys) == tokens


@pytest.mark.postgres
def test_update_by_key__bounds_are_applied_by_the_database(ids: list[int]) -> None:
    keys = ids[3:9]
    changed = update_by_key(
        Item, key="pk", keys=keys, values={"title": "bounded"}, bounds=(keys[1], keys[-2])
    )
    assert changed == 4
    assert _column("title", keys)[1:-1] == ["bounded"] * 4
    assert "bounded" not in (_column("title", [keys[0]]) + _column("title", [keys[-1]]))


def test_update_by_key__no_keys_no_statement(ids: list[int], django_assert_num_queries) -> None:
    with django_assert_num_queries(0):
        assert update_by_key(Item, key="pk", keys=[], values={"title": []}) == 0


def test_update_by_key__list_of_the_wrong_length_is_refused(ids: list[int]) -> None:
    with pytest.raises(ValueError, match="title: 2 values for 3 keys"):
        update_by_key(Item, key="pk", keys=ids[:3], values={"title": ["a", "b"]})


def test_update_by_key__no_values_updates_nothing(ids: list[int]) -> None:
    assert update_by_key(Item, key="pk", keys=ids[:3], values={}) == 0


def test_update_by_key__values_never_reach_the_debug_query_log(ids: list[int], settings) -> None:
    settings.DEBUG = True
    reset_queries()
    keys = ids[:5]
    tokens = _new_tokens(len(keys))
    update_by_key(
        Item,
        key="pk",
        keys=keys,
        values={"token": tokens, "token_issued_at": Now()},
        bounds=(keys[0], keys[-1]),
    )
    assert _column("token", keys) == tokens  # it did write them...
    logged = " ".join(q["sql"] for q in connection.queries)
    for token in tokens:  # ...and no form of them is in the log
        assert str(token) not in logged
        assert token.hex not in logged


def test_update_by_key__fallback_for_other_backends_uses_bulk_update(ids: list[int]) -> None:
    keys = ids[:3]
    tokens = _new_tokens(3)
    _update_bulk_update(Item, "pk", keys, {"token": tokens}, {"status": "closed"}, connection.alias)
    assert _column("token", keys) == tokens
    assert set(_column("status", keys)) == {"closed"}


# -- multi-table inheritance (tests.testapp): a child's fields live in two or three tables --


@pytest.fixture
def restaurants() -> list[int]:
    for i in range(6):
        Restaurant.objects.create(name=f"r{i}", city="old", ref=f"ref{i}", code=f"code{i}")
    Place.objects.create(name="not a restaurant", ref="plain")
    return sorted(Restaurant.objects.values_list("pk", flat=True))


def _restaurant_rows(keys: list[int]) -> list[tuple[str, str, int]]:
    rows = {r.pk: (r.name, r.city, r.rating) for r in Restaurant.objects.filter(pk__in=keys)}
    return [rows[k] for k in keys]


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ({"name": ["a", "b", "c"]}, [("a", "old", 0), ("b", "old", 0), ("c", "old", 0)]),
        ({"rating": [7, 8, 9]}, [("r1", "old", 7), ("r2", "old", 8), ("r3", "old", 9)]),
        (
            {"name": ["a", "b", "c"], "rating": [7, 8, 9]},
            [("a", "old", 7), ("b", "old", 8), ("c", "old", 9)],
        ),
        ({"city": "new"}, [("r1", "new", 0), ("r2", "new", 0), ("r3", "new", 0)]),
        ({"rating": 5}, [("r1", "old", 5), ("r2", "old", 5), ("r3", "old", 5)]),
        ({"city": "new", "rating": 5}, [("r1", "new", 5), ("r2", "new", 5), ("r3", "new", 5)]),
        (
            {"name": ["a", "b", "c"], "city": Concat(F("name"), Value("!")), "rating": 4},
            [("a", "r1!", 4), ("b", "r2!", 4), ("c", "r3!", 4)],
        ),
    ],
    ids=[
        "parent-list",
        "child-list",
        "both-lists",
        "parent-constant",
        "child-constant",
        "both-constants",
        "mixed-with-expression",
    ],
)
@pytest.mark.parametrize("key", ["pk", "code", "ref"], ids=["pk", "child-key", "parent-key"])
def test_update_by_key__multi_table_inheritance_writes_each_field_to_its_own_table(
    restaurants: list[int], key: str, values: dict[str, Any], expected: list[tuple[Any, ...]]
) -> None:
    keys = restaurants[1:4]
    key_values = list(
        Restaurant.objects.filter(pk__in=keys).order_by("pk").values_list(key, flat=True)
    )
    changed = update_by_key(
        Restaurant, key=key, keys=key_values, values=values, bounds=(key_values[0], key_values[-1])
    )
    assert changed == 3
    assert _restaurant_rows(keys) == expected
    others = [k for k in restaurants if k not in keys]
    assert _restaurant_rows(others) == [(f"r{restaurants.index(k)}", "old", 0) for k in others]
    assert Place.objects.get(ref="plain").name == "not a restaurant"


def test_update_by_key__three_levels_of_inheritance(restaurants: list[int]) -> None:
    pizzerias = [
        Pizzeria.objects.create(name=f"p{i}", ref=f"pref{i}", code=f"pcode{i}") for i in range(3)
    ]
    keys = [p.pk for p in pizzerias]
    changed = update_by_key(
        Pizzeria,
        key="pk",
        keys=keys,
        values={"name": ["x", "y", "z"], "rating": 3, "oven": ["wood", "gas", "wood"]},
    )
    assert changed == 3
    rows = Pizzeria.objects.filter(pk__in=keys).order_by("pk")
    assert [(p.name, p.rating, p.oven) for p in rows] == [
        ("x", 3, "wood"),
        ("y", 3, "gas"),
        ("z", 3, "wood"),
    ]
    assert _restaurant_rows(restaurants) == [(f"r{i}", "old", 0) for i in range(6)]


def test_update_by_key__inherited_rows_deleted_meanwhile_are_skipped(restaurants: list[int]):
    codes = [f"code{i}" for i in range(3)]
    Restaurant.objects.filter(code="code1").delete()
    changed = update_by_key(
        Restaurant, key="code", keys=codes, values={"name": ["a", "b", "c"], "rating": [1, 2, 3]}
    )
    assert changed == 2
    names = dict(Restaurant.objects.values_list("code", "name"))
    assert (names["code0"], names["code2"]) == ("a", "c")


def test_update_by_key__a_parent_model_is_one_table(restaurants: list[int]) -> None:
    keys = restaurants[:2]
    assert update_by_key(Place, key="pk", keys=keys, values={"name": ["p", "q"]}) == 2
    assert [n for n, _, _ in _restaurant_rows(keys)] == ["p", "q"]
