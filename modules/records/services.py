"""Writes shared by every tenant module: numbers, activity entries, comments."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from django.db import connection, transaction
from django.utils import timezone

from .actor import Actor
from .models import ActivityEntry, Comment


def number_next(*, prefix: str, width: int = 7) -> str:
    """Issue the next human number for ``prefix`` in the current tenant, e.g. ``INC0000042``.

    One upsert; the row lock serialises concurrent issuers until their transaction ends, so numbers are
    unique and, within committed transactions, without gaps. Numbers are per tenant (ServiceNow style).
    """
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO records_numbersequence (prefix, last_value) VALUES (%s, 1) ON CONFLICT (prefix)"
            " DO UPDATE SET last_value = records_numbersequence.last_value + 1 RETURNING last_value",
            [prefix],
        )
        value = cursor.fetchone()[0]
    return f"{prefix}{value:0{width}d}"


def number_advance_past(*, prefix: str, value: int) -> None:
    """Make sure the next number for ``prefix`` is greater than ``value`` (after importing numbers)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO records_numbersequence (prefix, last_value) VALUES (%s, %s) ON CONFLICT (prefix)"
            " DO UPDATE SET last_value = GREATEST(records_numbersequence.last_value, EXCLUDED.last_value)",
            [prefix, value],
        )


def activity_record(
    *,
    actor: Actor,
    verb: str,
    record_type: str,
    record_id: uuid.UUID,
    changes: dict[str, Any] | None = None,
    at: dt.datetime | None = None,
) -> ActivityEntry:
    """Append one entry to the activity history. ``at`` defaults to now (UTC-aware)."""
    return ActivityEntry.objects.create(
        record_type=record_type,
        record_id=record_id,
        verb=verb,
        at=at or timezone.now(),
        actor_user_id=actor.user_id,
        actor_person=actor.person,
        source=actor.source,
        changes=changes or {},
    )


@transaction.atomic
def comment_add(
    *, actor: Actor, record_type: str, record_id: uuid.UUID, body: str, is_work_note: bool
) -> Comment:
    """Add a public comment or a work note to a record and log ``comment.added`` / ``work_note.added``.

    Callers check who may comment; this only writes.
    """
    comment = Comment.objects.create(
        record_type=record_type,
        record_id=record_id,
        author=actor.person,
        body=body,
        is_work_note=is_work_note,
    )
    activity_record(
        actor=actor,
        verb="work_note.added" if is_work_note else "comment.added",
        record_type=record_type,
        record_id=record_id,
        changes={"comment_id": str(comment.pk)},
    )
    return comment
