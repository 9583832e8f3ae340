"""Slices as the database sees them: splits by rows, claims that skip a locked slice, and a
chunk's lock that holds its own slice row and nothing else (no worker queues on the run)."""

from __future__ import annotations

import os
import socket
import threading
from typing import Any

import psycopg2
import pytest
from django.db import connection, transaction
from django.db.models.functions import Now

from batchjobs import slice_store
from batchjobs.keyset import Keyset
from batchjobs.lease import Owner
from batchjobs.models import JobRun, JobSlice, State
from batchjobs.slice_store import SliceStore
from tests.testapp.models import Item

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def _sliced_run(total: int) -> JobRun:
    hwm = Item.objects.order_by("-id").values_list("id", flat=True).first()
    run = JobRun.objects.create(
        job="rotate_item_tokens", state=State.RUNNING, sliced=True, total=total,
        high_water_mark=hwm,
    )  # fmt: skip
    slice_store.create_first(run, using="default")
    return run


def _other_connection() -> Any:
    s = connection.settings_dict
    return psycopg2.connect(
        dbname=s["NAME"], user=s["USER"], password=s["PASSWORD"] or None,
        host=s["HOST"] or "127.0.0.1", port=s["PORT"] or 5432,
    )  # fmt: skip


def test_split_halves_the_rows_left__not_the_key_range(seed_items) -> None:
    seed_items(1_000)
    # Half the rows dense at the start, half spread thin up to 10**9.
    ids = sorted(Item.objects.values_list("id", flat=True))
    for n, pk in enumerate(ids[500:]):
        Item.objects.filter(pk=pk).update(id=10**6 * (n + 1))
    run = _sliced_run(1_000)
    keyset = Keyset(Item.objects.all(), "pk", None)
    first = slice_store.claim(run.pk, Owner.current(), using="default")
    assert first is not None and first.number == 0
    second = slice_store.split(run.pk, Owner.current(), keyset, chunk_size=10, using="default")
    assert second is not None
    first.refresh_from_db()
    in_first = Item.objects.filter(id__lte=first.upper).count()
    in_second = Item.objects.filter(id__gt=second.lower, id__lte=second.upper).count()
    # A split by key value would have put 999 of the rows in one half.
    assert (in_first, in_second) == (500, 500)
    assert (first.planned, second.planned) == (500, 500)
    assert second.lower == first.upper and second.cursor == second.lower


def test_no_split_when_what_is_left_is_a_few_chunks(seed_items) -> None:
    seed_items(60)
    run = _sliced_run(60)
    keyset = Keyset(Item.objects.all(), "pk", None)
    assert slice_store.claim(run.pk, Owner.current(), using="default") is not None
    assert (
        slice_store.split(run.pk, Owner.current(), keyset, chunk_size=10, using="default") is None
    )


def test_a_chunks_lock_holds_its_own_slice_row__never_the_run_row(seed_items) -> None:
    seed_items(2_000)
    run = _sliced_run(2_000)
    keyset = Keyset(Item.objects.all(), "pk", None)
    mine, theirs = Owner.current(), Owner.current()
    piece = slice_store.claim(run.pk, mine, using="default")
    other = slice_store.split(run.pk, theirs, keyset, chunk_size=10, using="default")
    assert piece is not None and other is not None
    store = SliceStore(
        alias="default", run_id=run.pk, job=run.job, owner=mine, slice_id=piece.pk,
        number=piece.number,
    )  # fmt: skip
    probe = _other_connection()
    try:
        with transaction.atomic():
            store.lock()  # as a chunk does, until its COMMIT
            with probe.cursor() as c:
                c.execute("SET lock_timeout = '200ms'")
                # Another worker's chunk, the coordinator's roll-up, an operator's pause:
                c.execute("SELECT 1 FROM batchjobs_jobrun WHERE id = %s FOR UPDATE", [run.pk])
                c.execute("SELECT 1 FROM batchjobs_jobslice WHERE id = %s FOR UPDATE", [other.pk])
                # ...but this slice's row is taken.
                with pytest.raises(psycopg2.errors.LockNotAvailable):
                    c.execute(
                        "SELECT 1 FROM batchjobs_jobslice WHERE id = %s FOR UPDATE", [piece.pk]
                    )
            probe.rollback()
    finally:
        probe.close()


def test_claims_skip_a_locked_slice_and_a_live_owners(seed_items) -> None:
    seed_items(100)
    run = _sliced_run(100)
    JobSlice.objects.create(run=run, number=1, lower=None, upper=None, planned=0)
    held = JobSlice.objects.get(run=run, number=0)
    got: list[Any] = []
    with transaction.atomic():
        JobSlice.objects.select_for_update().filter(pk=held.pk).first()

        def claim() -> None:
            got.append(slice_store.claim(run.pk, Owner.current(), using="default"))
            connection.close()

        worker = threading.Thread(target=claim)
        worker.start()
        worker.join(timeout=10)
    assert got and got[0] is not None and got[0].number == 1, "it waited, or took the locked one"
    # Both owned by a live process on this host (not this one): neither is claimable.
    JobSlice.objects.filter(run=run).update(
        owner_token="live", owner_host=socket.gethostname(), owner_pid=os.getppid(),
        heartbeat_at=Now(),
    )  # fmt: skip
    assert slice_store.claim(run.pk, Owner.current(), using="default") is None
    # Its process gone (a pid that cannot be running): claimable at once.
    JobSlice.objects.filter(pk=held.pk).update(owner_pid=2**22 + 1)
    again = slice_store.claim(run.pk, Owner.current(), using="default")
    assert again is not None and again.pk == held.pk


def test_a_split_gives_up_on_a_slice_a_lost_session_holds(seed_items) -> None:
    seed_items(2_000)
    run = _sliced_run(2_000)
    keyset = Keyset(Item.objects.all(), "pk", None)
    piece = slice_store.claim(run.pk, Owner.current(), using="default")
    assert piece is not None
    lost = _other_connection()  # a host that went away inside a chunk's transaction
    got: list[Any] = []
    try:
        with lost.cursor() as c:
            c.execute("SELECT 1 FROM batchjobs_jobslice WHERE id = %s FOR UPDATE", [piece.pk])

        def split() -> None:
            got.append(
                slice_store.split(run.pk, Owner.current(), keyset, chunk_size=10, using="default")
            )
            connection.close()

        worker = threading.Thread(target=split)
        worker.start()
        worker.join(timeout=slice_store.LOCK_WAIT + 10)
        assert not worker.is_alive(), "the split waited on the lost session's lock"
    finally:
        lost.rollback()
        lost.close()
    assert got == [None]
    assert JobSlice.objects.filter(run=run).count() == 1, "nothing was split"


def test_a_claim_retried_after_a_lost_commit_reply_gets_the_same_slice(seed_items) -> None:
    seed_items(2_000)
    run = _sliced_run(2_000)
    JobSlice.objects.create(run=run, number=1, lower=None, upper=None, planned=0)
    me = Owner.current()
    first = slice_store.claim(run.pk, me, using="default")
    # The COMMIT went through but its reply was lost: the retry must not take a second
    # slice and leave the first owned by a live process that no longer works on it.
    again = slice_store.claim(run.pk, me, using="default")
    assert first is not None and again is not None and again.pk == first.pk
    assert JobSlice.objects.filter(run=run, owner_token=me.token).count() == 1
