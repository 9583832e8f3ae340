from __future__ import annotations

import uuid

import pytest
from django.db import connection, models
from django.test.utils import CaptureQueriesContext, isolate_apps

from batchjobs.exceptions import JobDefinitionError
from batchjobs.keyset import Chunk, Keyset, check_queryset, high_water_mark, key_field
from tickets.models import Ticket
from tickets.seeding import seed

# -- the queryset a job may hand over ---------------------------------------------------


def test_check_queryset__accepts_a_filtered_queryset() -> None:
    check_queryset(Ticket.objects.filter(status="open").exclude(title=""))


@pytest.mark.parametrize(
    ("queryset", "says"),
    [
        (lambda: Ticket.objects.all()[:10], "sliced"),
        (lambda: Ticket.objects.all()[5:], "sliced"),
        (lambda: Ticket.objects.order_by("-id"), "order_by"),
        (lambda: Ticket.objects.order_by("title"), "drop the ordering"),
        (lambda: Ticket.objects.distinct(), "distinct()"),  # noqa: PLW0108
        (lambda: Ticket.objects.filter(pk=1).union(Ticket.objects.filter(pk=2)), "set operation"),
    ],
    ids=["sliced", "offset", "ordered", "ordered-by-other", "distinct", "union"],
)
def test_check_queryset__refuses_what_the_library_must_own(queryset, says: str) -> None:
    with pytest.raises(JobDefinitionError) as caught:
        check_queryset(queryset())
    assert says in str(caught.value)


# -- the key ------------------------------------------------------------------------------


def test_key_field__pk_and_unique_fields_are_keys() -> None:
    assert key_field(Ticket, "pk").name == "id"
    assert key_field(Ticket, "token").name == "token"


def test_key_field__refuses_a_non_unique_field() -> None:
    with pytest.raises(JobDefinitionError, match="key 'title' of Ticket must be a unique field"):
        key_field(Ticket, "title")


@isolate_apps("tickets")
def test_key_field__refuses_a_nullable_unique_field() -> None:
    class Gadget(models.Model):  # noqa: DJ008
        serial = models.IntegerField(unique=True, null=True)

        class Meta:
            app_label = "tickets"

    with pytest.raises(JobDefinitionError, match="key 'serial' of Gadget must not be nullable"):
        key_field(Gadget, "serial")


def test_key_field__unknown_field_is_an_error() -> None:
    with pytest.raises(Exception, match="no field named 'nope'"):
        key_field(Ticket, "nope")


# -- planning chunks on the database -----------------------------------------------------


@pytest.fixture
def ids() -> list[int]:
    seed(25)
    return sorted(Ticket.objects.values_list("id", flat=True))


@pytest.mark.django_db
def test_next_keys__walks_the_keys_in_order_after_the_cursor(ids: list[int]) -> None:
    keyset = Keyset(Ticket.objects.all(), "pk", ids[-1])
    assert keyset.next_keys(after=None, limit=10) == ids[:10]
    assert keyset.next_keys(after=ids[9], limit=10) == ids[10:20]
    assert keyset.next_keys(after=ids[19], limit=10) == ids[20:]
    assert keyset.next_keys(after=ids[-1], limit=10) == []


@pytest.mark.django_db
def test_next_keys__stops_at_the_high_water_mark(ids: list[int]) -> None:
    keyset = Keyset(Ticket.objects.all(), "pk", ids[4])
    assert keyset.next_keys(after=None, limit=100) == ids[:5]


@pytest.mark.django_db
def test_next_keys__empty_table_has_no_high_water_mark_and_no_keys() -> None:
    keyset = Keyset(Ticket.objects.all(), "pk", high_water_mark(Ticket.objects.all(), "pk"))
    assert keyset.upto is None
    assert keyset.next_keys(after=None, limit=10) == []


@pytest.mark.django_db
def test_next_keys__keeps_the_job_filter(ids: list[int]) -> None:
    Ticket.objects.filter(pk__in=ids[::2]).update(title="even")
    queryset = Ticket.objects.filter(title="even")
    keyset = Keyset(queryset, "pk", high_water_mark(queryset, "pk"))
    assert keyset.next_keys(after=None, limit=100) == ids[::2]


@pytest.mark.django_db
def test_next_keys__seeks_with_a_range_and_limit_never_offset(ids: list[int]) -> None:
    keyset = Keyset(Ticket.objects.all(), "pk", ids[-1])
    with CaptureQueriesContext(connection) as queries:
        keyset.next_keys(after=ids[10], limit=5)
    (sql,) = [q["sql"] for q in queries.captured_queries]
    assert "OFFSET" not in sql.upper()
    assert "LIMIT 5" in sql.upper()
    assert '."id" >' in sql and "ORDER BY" in sql.upper()
    assert '"token"' not in sql  # keys only: memory is O(chunk), not O(row width)


@pytest.mark.django_db
def test_next_keys__walks_a_uuid_key_in_order(ids: list[int]) -> None:
    tokens = sorted(Ticket.objects.values_list("token", flat=True))
    keyset = Keyset(Ticket.objects.all(), "token", tokens[-1])
    first = keyset.next_keys(after=None, limit=10)
    assert first == tokens[:10]
    assert keyset.next_keys(after=first[-1], limit=100) == tokens[10:]


@pytest.mark.django_db
def test_high_water_mark__is_the_largest_key_of_the_queryset(ids: list[int]) -> None:
    assert high_water_mark(Ticket.objects.all(), "pk") == ids[-1]
    assert high_water_mark(Ticket.objects.filter(pk__lt=ids[3]), "pk") == ids[2]


@pytest.mark.django_db
def test_high_water_mark__of_a_uuid_key(ids: list[int], request) -> None:
    assert high_water_mark(Ticket.objects.all(), "token") == max(
        Ticket.objects.values_list("token", flat=True)
    )


# -- the checkpoint's JSON form ------------------------------------------------------------


def test_encode_decode__round_trips_integers_and_uuids() -> None:
    by_id = Keyset(Ticket.objects.all(), "pk", None)
    assert by_id.encode(42) == 42
    assert by_id.decode(42) == 42
    assert by_id.encode(None) is None and by_id.decode(None) is None
    by_token = Keyset(Ticket.objects.all(), "token", None)
    token = uuid.uuid4()
    assert by_token.encode(token) == str(token)
    assert by_token.decode(str(token)) == token


# -- a chunk -------------------------------------------------------------------------------


@pytest.mark.django_db
def test_chunk__knows_its_range_and_model(ids: list[int]) -> None:
    keyset = Keyset(Ticket.objects.filter(status="open"), "pk", ids[-1])
    chunk = Chunk(keys=ids[3:8], keyset=keyset)
    assert (len(chunk), chunk.first, chunk.last, chunk.model) == (5, ids[3], ids[7], Ticket)
    expected = set(
        Ticket.objects.filter(pk__in=ids[3:8], status="open").values_list("pk", flat=True)
    )
    assert set(chunk.queryset.values_list("pk", flat=True)) == expected


@pytest.mark.django_db
def test_chunk__update_sets_values_on_its_rows_only(ids: list[int]) -> None:
    keyset = Keyset(Ticket.objects.all(), "pk", ids[-1])
    chunk = Chunk(keys=ids[3:8], keyset=keyset)
    assert chunk.update(title=[f"chunk-{i}" for i in range(5)], status="closed") == 5
    rows = dict(Ticket.objects.filter(title__startswith="chunk-").values_list("pk", "title"))
    assert rows == {pk: f"chunk-{i}" for i, pk in enumerate(ids[3:8])}
    assert set(Ticket.objects.filter(pk__in=ids[3:8]).values_list("status", flat=True)) == {
        "closed"
    }
