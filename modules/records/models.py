"""Parts every tenant record shares: UUIDv7 ids, per-tenant numbering, comments, activity history.

Tenant plane: these tables live in each tenant schema and refer to control-plane rows by id only.
"""

from __future__ import annotations

import uuid
from typing import Any

import uuid_utils
from django.db import models
from django.utils import timezone


def uuid7() -> uuid.UUID:
    """A time-ordered UUID (RFC 9562 version 7), unique across every tenant of the platform."""
    return uuid.UUID(bytes=uuid_utils.uuid7().bytes)


class Record(models.Model):
    """Abstract base of tenant records: a UUIDv7 primary key and creation/update times (UTC)."""

    id = models.UUIDField(primary_key=True, default=uuid7, editable=False)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        abstract = True


class NumberSequence(models.Model):
    """The last number issued per prefix (``INC``, ``REQ``...) in this tenant. Bigint key."""

    prefix = models.CharField(max_length=8, unique=True)
    last_value = models.BigIntegerField(default=0)


class Comment(Record):
    """A public comment (visible to the caller) or an internal work note (technicians only) on a record."""

    record_type = models.CharField(max_length=40)
    record_id = models.UUIDField(db_index=True)
    author = models.ForeignKey("people.Person", on_delete=models.PROTECT, null=True, related_name="+")
    body = models.TextField()
    is_work_note = models.BooleanField(default=False)

    class Meta:
        ordering = ["created_at", "id"]


class AppendOnlyQuerySet(models.QuerySet["ActivityEntry"]):
    def update(self, **kwargs: Any) -> int:
        raise TypeError("the activity history is append-only")

    def delete(self) -> tuple[int, dict[str, int]]:
        raise TypeError("the activity history is append-only")


class ActivityEntry(Record):
    """One entry of the append-only activity history: who did what to which record, when, old -> new.

    ``at`` is when it happened (UTC); for imported history it is the source system's timestamp, while
    ``created_at`` is when the entry was written. ``changes`` maps field -> [old, new].
    """

    record_type = models.CharField(max_length=40)
    record_id = models.UUIDField()
    verb = models.CharField(max_length=60)
    at = models.DateTimeField(default=timezone.now)
    actor_user_id = models.BigIntegerField(null=True)  # control-plane user id; no foreign key into public
    actor_person = models.ForeignKey("people.Person", on_delete=models.PROTECT, null=True, related_name="+")
    source = models.CharField(max_length=20, default="console")
    changes = models.JSONField(default=dict)

    objects = AppendOnlyQuerySet.as_manager()

    class Meta:
        ordering = ["at", "id"]
        indexes = [models.Index(fields=["record_id", "at"], name="activity_record_at")]

    def save(self, *args: Any, **kwargs: Any) -> None:
        if not self._state.adding:
            raise TypeError("the activity history is append-only")
        super().save(*args, **kwargs)

    def delete(self, *args: Any, **kwargs: Any) -> tuple[int, dict[str, int]]:
        raise TypeError("the activity history is append-only")
