from __future__ import annotations

from typing import Any

from django.db import models
from django.utils import timezone

from tickets.search_title import SearchTitleField
from tickets.tokens import new_token


class Ticket(models.Model):
    """A support ticket. Its ``token`` is a bearer secret: never log it, never write it back.

    The token is owned by the token machinery, not by whoever happens to hold an instance:
    an ordinary ``save()`` of an existing row never writes ``token`` (or its issue time), so
    an instance loaded before a rotation cannot put a leaked token back when it is saved
    after. Rotation writes tokens with a queryset-level update.
    """

    class Status(models.TextChoices):
        OPEN = "open"
        PENDING = "pending"
        CLOSED = "closed"

    id = models.BigAutoField(primary_key=True)
    token = models.UUIDField(unique=True, editable=False, default=new_token)
    token_issued_at = models.DateTimeField(
        editable=False,
        default=timezone.now,
        help_text="When the current token was made; a rotation's verification pass uses it.",
    )
    title = models.CharField(max_length=200)
    # Filled from the title whenever the model writes the row (save(), bulk_create());
    # rows from before the column existed get it from `runjob backfill_ticket_search_title`.
    search_title = SearchTitleField(
        source="title", help_text="The title normalised for search (tickets.search_title)."
    )
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.OPEN)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    TOKEN_FIELDS = frozenset({"token", "token_issued_at"})

    def __str__(self) -> str:
        return f"Ticket {self.pk}: {self.title}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        if not self._state.adding and self.pk is not None:
            update_fields = kwargs.get("update_fields")
            if update_fields is None:
                update_fields = [
                    f.name
                    for f in self._meta.concrete_fields
                    if not f.primary_key and f.name not in self.TOKEN_FIELDS
                ]
            else:
                update_fields = [f for f in update_fields if f not in self.TOKEN_FIELDS]
                if "title" in update_fields and "search_title" not in update_fields:
                    update_fields.append("search_title")  # never stale after a title edit
            kwargs["update_fields"] = update_fields
        super().save(*args, **kwargs)
