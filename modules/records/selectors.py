"""Reads shared by every tenant module: a record's comments and activity history."""

from __future__ import annotations

import uuid

from django.db.models import QuerySet

from .actor import Actor
from .models import ActivityEntry, Comment


def comment_list(*, actor: Actor, record_id: uuid.UUID) -> QuerySet[Comment]:
    """Comments on a record, oldest first; work notes only for technicians. The caller checked access
    to the record itself."""
    qs = Comment.objects.filter(record_id=record_id).select_related("author")
    return qs if actor.is_technician else qs.filter(is_work_note=False)


def activity_list(*, actor: Actor, record_id: uuid.UUID) -> QuerySet[ActivityEntry]:
    """The activity history of a record, in the order it happened. Technicians only see work-note
    entries; the caller checked access to the record itself."""
    qs = ActivityEntry.objects.filter(record_id=record_id).select_related("actor_person")
    return qs if actor.is_technician else qs.exclude(verb="work_note.added")
