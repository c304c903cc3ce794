"""Reads shared by every tenant module: a record's comments, activity history and links."""

from __future__ import annotations

import uuid

from django.db.models import Q, QuerySet

from controlplane.problems import NotFound

from .actor import Actor
from .models import ActivityEntry, Comment, RecordLink


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


def link_list(*, actor: Actor, record_id: uuid.UUID) -> QuerySet[RecordLink]:
    """Links from and to a record, oldest first. Links are technicians' working data: end users see none.
    The caller checked access to the record itself."""
    if not actor.is_technician:
        return RecordLink.objects.none()
    return RecordLink.objects.filter(Q(source_id=record_id) | Q(target_id=record_id))


def link_get(*, actor: Actor, link_id: uuid.UUID) -> RecordLink:
    """One link (technicians only). Raises NotFound otherwise."""
    link = RecordLink.objects.filter(pk=link_id).first() if actor.is_technician else None
    if link is None:
        raise NotFound("no such link")
    return link
