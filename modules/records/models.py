"""Parts every tenant record shares: UUIDv7 ids, per-tenant numbering, comments, activity history.

Tenant plane: these tables live in each tenant schema and refer to control-plane rows by id only.
"""

from __future__ import annotations

import uuid
from typing import Any

import uuid_utils
from django.contrib.postgres.indexes import GinIndex
from django.contrib.postgres.search import SearchVectorField
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


class RecordLink(Record):
    """A typed, directed link between any two records of this tenant (``source`` -> ``target``).

    Kinds and their inverse readings follow Jira Service Management's issue links and ServiceNow's
    related records: relates to, duplicates / is duplicated by, is caused by / causes, blocks / is
    blocked by, is parent of / is child of, documents / is documented by (knowledge).
    """

    class Kind(models.TextChoices):
        RELATES_TO = "relates_to", "relates to"
        DUPLICATES = "duplicates", "duplicates"
        CAUSED_BY = "caused_by", "is caused by"
        BLOCKS = "blocks", "blocks"
        PARENT_OF = "parent_of", "is parent of"
        DOCUMENTS = "documents", "documents"

    INVERSE = {
        "relates_to": "relates to",
        "duplicates": "is duplicated by",
        "caused_by": "causes",
        "blocks": "is blocked by",
        "parent_of": "is child of",
        "documents": "is documented by",
    }

    source_type = models.CharField(max_length=40)
    source_id = models.UUIDField()
    target_type = models.CharField(max_length=40)
    target_id = models.UUIDField(db_index=True)
    kind = models.CharField(max_length=20, choices=Kind.choices)
    created_by = models.ForeignKey("people.Person", on_delete=models.PROTECT, null=True, related_name="+")

    class Meta:
        ordering = ["created_at", "id"]
        constraints = [
            models.UniqueConstraint(fields=["source_id", "target_id", "kind"], name="uniq_record_link"),
            models.CheckConstraint(
                condition=~models.Q(source_id=models.F("target_id")), name="link_not_self"
            ),
        ]


class SearchDocument(models.Model):
    """One row per searchable record or article of this tenant: what full-text search reads.

    Written by each module's services in the same transaction as the record. ``visibility`` decides who
    finds it: ``technicians`` (provider staff only), ``owner`` (technicians and ``owner_person_id``, e.g.
    the caller of an incident) or ``portal`` (everyone of the tenant, e.g. a published portal article).
    ``document`` is an English ``tsvector``: number and title weighted A, body weighted B.
    """

    class Visibility(models.TextChoices):
        TECHNICIANS = "technicians", "Technicians"
        OWNER = "owner", "Owner and technicians"
        PORTAL = "portal", "Everyone in the tenant"

    record_id = models.UUIDField(primary_key=True)
    record_type = models.CharField(max_length=40)
    number = models.CharField(max_length=40)
    title = models.CharField(max_length=300)
    state = models.CharField(max_length=40, blank=True)
    visibility = models.CharField(max_length=12, choices=Visibility.choices)
    owner_person_id = models.UUIDField(null=True)
    updated_at = models.DateTimeField(default=timezone.now)
    document = SearchVectorField()

    class Meta:
        indexes = [
            GinIndex(fields=["document"], name="search_document_gin"),
            # End users search what is published to the portal (a few articles among many records) ...
            GinIndex(
                fields=["document"], name="search_document_portal", condition=models.Q(visibility="portal")
            ),
            # ... and what they own.
            models.Index(fields=["owner_person_id", "updated_at"], name="search_document_owner"),
            # Lets a common-word search walk the newest documents first instead of every match.
            models.Index(fields=["updated_at"], name="search_document_recent"),
        ]


class Attachment(Record):
    """A file attached to a record. ``content_type`` is what the bytes are (sniffed), never what the
    uploader claimed; ``size`` in bytes; ``storage_name`` is the path in Django's default storage, under
    the tenant's schema name. ``internal`` attachments are work-note files: technicians only."""

    record_type = models.CharField(max_length=40)
    record_id = models.UUIDField(db_index=True)
    file_name = models.CharField(max_length=200)
    content_type = models.CharField(max_length=100)
    size = models.PositiveBigIntegerField()
    sha256 = models.CharField(max_length=64)
    storage_name = models.CharField(max_length=300, unique=True)
    internal = models.BooleanField(default=False)
    uploaded_by = models.ForeignKey("people.Person", on_delete=models.PROTECT, null=True, related_name="+")

    class Meta:
        ordering = ["created_at", "id"]


class SavedView(Record):
    """A named list view of one console list: its filters, sort and page size as the query string
    (``state=new&sort=-opened``, without ``page``). Owned by the control-plane user ``owner_user_id`` (no
    foreign key into public); ``shared`` makes it visible to every technician of this tenant, while only
    its owner may delete it. UUIDv7 ids, so another tenant's view id is simply not found here."""

    class ListName(models.TextChoices):
        INCIDENTS = "incidents", "Incidents"
        REQUESTS = "requests", "Service requests"
        PROBLEMS = "problems", "Problems"
        CHANGES = "changes", "Changes"
        CIS = "cis", "Configuration items"
        ARTICLES = "articles", "Knowledge articles"

    owner_user_id = models.BigIntegerField()
    list_name = models.CharField(max_length=20, choices=ListName.choices)
    name = models.CharField(max_length=80)
    query = models.CharField(max_length=2000, blank=True)
    shared = models.BooleanField(default=False)

    class Meta:
        ordering = ["list_name", "name", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["owner_user_id", "list_name", "name"], name="uniq_saved_view_name"
            )
        ]
        indexes = [models.Index(fields=["list_name", "owner_user_id"], name="saved_view_list_owner")]
