"""``key_field``: a key that is no field at all is a one-line ``JobDefinitionError`` that
names the model, the bad key and the fields that could be the key."""

from __future__ import annotations

import io
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db.models import QuerySet

from batchjobs import Chunk, ResumableJob
from batchjobs.exceptions import JobDefinitionError
from batchjobs.keyset import key_field
from batchjobs.models import JobRun
from tests.testapp.models import Item


def test_key_field__unknown_key_names_the_model_and_the_fields_that_can_be_the_key() -> None:
    with pytest.raises(JobDefinitionError) as caught:
        key_field(Item, "nope")
    assert str(caught.value) == (
        "the job's key: Item has no field named 'nope'; fields that can be the key (unique, "
        "not null): pk, id, token"
    )


def test_key_field__a_typo_gets_a_suggestion() -> None:
    with pytest.raises(JobDefinitionError) as caught:
        key_field(Item, "tokne")
    assert str(caught.value) == (
        "the job's key: Item has no field named 'tokne'; did you mean 'token'? fields that "
        "can be the key (unique, not null): pk, id, token"
    )


def test_key_field__known_keys_still_resolve() -> None:
    assert key_field(Item, "pk").name == "id"
    assert key_field(Item, "token").name == "token"


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("registry_snapshot")
def test_runjob__job_with_a_misspelled_key_is_one_line() -> None:
    class MisspelledKey(ResumableJob):
        name = "test_misspelled_key"
        description = "A job whose key is no field."
        key = "nope"

        def get_queryset(self) -> QuerySet[Any]:
            return Item.objects.all()

        def process(self, chunk: Chunk) -> int:
            return 0

    with pytest.raises(CommandError) as caught:
        call_command("runjob", MisspelledKey.name, "--log-format", "json", stdout=io.StringIO())
    assert caught.value.returncode == 1
    assert str(caught.value) == (
        "the job's key: Item has no field named 'nope'; fields that can be the key (unique, "
        "not null): pk, id, token"
    )
    assert not JobRun.objects.exists()
