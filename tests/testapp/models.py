"""Test-only models: the table the library's own tests rewrite, and shapes a job's rows can
take that the domain does not have."""

from __future__ import annotations

import uuid

from django.db import models
from django.utils import timezone

# -- a table a job rewrites ----------------------------------------------------------------


class Item(models.Model):
    """The library's tests' stand-in for a domain table: a job gives each row a new
    ``token`` (unique, so a job can hit a real unique violation, and a non-integer key to
    walk), records when in ``token_issued_at`` (what a verification pass looks at), and must
    leave ``title``, ``status`` and ``updated_at`` as they were."""

    class Status(models.TextChoices):
        OPEN = "open"
        PENDING = "pending"
        CLOSED = "closed"

    id = models.BigAutoField(primary_key=True)
    token = models.UUIDField(unique=True, default=uuid.uuid4)
    token_issued_at = models.DateTimeField(default=timezone.now)
    title = models.CharField(max_length=200)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.OPEN)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"Item {self.pk}: {self.title}"


# -- a to-many relation: a filter across it matches a row once per related row ------------


class Group(models.Model):
    name = models.CharField(max_length=50, unique=True)

    def __str__(self) -> str:
        return self.name


class Member(models.Model):
    name = models.CharField(max_length=100)
    notified = models.IntegerField(default=0)
    groups = models.ManyToManyField(Group, related_name="members", blank=True)

    def __str__(self) -> str:
        return self.name


class Note(models.Model):
    """The reverse side of a foreign key: ``Member.objects.filter(notes__...)`` is to-many."""

    member = models.ForeignKey(Member, related_name="notes", on_delete=models.CASCADE)
    text = models.CharField(max_length=100)

    def __str__(self) -> str:
        return self.text


# -- multi-table inheritance: a child's fields live in two (or three) tables --------------


class Place(models.Model):
    name = models.CharField(max_length=100)
    city = models.CharField(max_length=100, default="")
    # A unique key that lives in the parent's table.
    ref = models.CharField(max_length=20, unique=True)

    def __str__(self) -> str:
        return self.name


class Restaurant(Place):
    rating = models.IntegerField(default=0)
    # A unique key of the child's own, which is not the parent link.
    code = models.CharField(max_length=20, unique=True)

    def __str__(self) -> str:
        return f"restaurant {self.name}"


class Pizzeria(Restaurant):
    oven = models.CharField(max_length=20, default="")

    def __str__(self) -> str:
        return f"pizzeria {self.name}"
