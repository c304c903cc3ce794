"""Reads shared by every tenant module: a record's comments, activity history and links."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from typing import Any

from django.core.exceptions import ValidationError
from django.db import connection
from django.db.models import Q, QuerySet

from controlplane.problems import InvalidInput, NotFound

from .actor import Actor
from .models import ActivityEntry, Attachment, Comment, RecordLink, SavedView, SearchDocument
from .registry import record_get


def comment_list(*, actor: Actor, record_id: uuid.UUID) -> QuerySet[Comment]:
    """Comments on a record, oldest first; work notes only for technicians. The caller checked access
    to the record itself."""
    qs = Comment.objects.filter(record_id=record_id).select_related("author")
    return qs if actor.is_technician else qs.filter(is_work_note=False)


# History entries only technicians see: internal notes, and entries that name records the caller may not
# see (links, the problem, change or CI an incident was linked to).
TECHNICIAN_VERBS = (
    "work_note.added",
    "link.added",
    "link.removed",
    "incident.problem_linked",
    "incident.change_linked",
    "incident.ci_linked",
)


def activity_list(*, actor: Actor, record_id: uuid.UUID) -> QuerySet[ActivityEntry]:
    """The activity history of a record, in the order it happened. Work notes, internal attachments,
    links and links to other records are technicians' only; the caller checked access to the record."""
    qs = ActivityEntry.objects.filter(record_id=record_id).select_related("actor_person")
    if actor.is_technician:
        return qs
    return qs.exclude(verb__in=TECHNICIAN_VERBS).exclude(
        verb__startswith="attachment.", changes__internal=True
    )


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


def attachment_list(*, actor: Actor, record_id: uuid.UUID) -> QuerySet[Attachment]:
    """Attachments of a record, oldest first; internal ones only for technicians. The caller checked
    access to the record itself."""
    qs = Attachment.objects.filter(record_id=record_id).select_related("uploaded_by")
    return qs if actor.is_technician else qs.filter(internal=False)


def attachment_get(*, actor: Actor, attachment_id: uuid.UUID | str) -> Attachment:
    """One attachment, only if the actor may see the record it hangs on (checked with the owning module's
    own selector) and, for internal files, is a technician. Raises NotFound otherwise, exactly as for an
    id that never existed (another tenant's id included)."""
    try:
        attachment = Attachment.objects.get(pk=attachment_id)
    except (Attachment.DoesNotExist, ValidationError, ValueError, TypeError) as exc:
        raise NotFound("no such attachment") from exc
    if attachment.internal and not actor.is_technician:
        raise NotFound("no such attachment")
    try:
        record_get(actor=actor, record_type=attachment.record_type, record_id=attachment.record_id)
    except (NotFound, InvalidInput) as exc:
        raise NotFound("no such attachment") from exc
    return attachment


@dataclass(frozen=True)
class SearchHit:
    """One search result: the record's kind, id, number, title and state, and its rank (higher first)."""

    record_type: str
    record_id: uuid.UUID
    number: str
    title: str
    state: str
    rank: float


WORD = re.compile(r"\w+")
# A query with at most this many matches ranks all of them. Beyond it (a common word), only the newest
# RANK_WINDOW matches among the newest RECENT_LIMIT documents are ranked, as GitHub's and Jira's searches
# bound their work: ranking a quarter of a 1,000,000-record tenant would take longer than the person
# waits (tests/benchmarks/bench_search.py).
COMPLETE_LIMIT = 5000
RANK_WINDOW = 1000
RECENT_LIMIT = 200_000


def search_tsquery(text: str) -> str | None:
    """A PostgreSQL tsquery source from what a person typed: every word must match (stemmed, English),
    the last word also as a prefix (``serv`` finds ``server``). Only word characters pass, so the result
    is always valid tsquery syntax. None when there is no word."""
    words = WORD.findall(text.lower())[:12]
    if not words:
        return None
    return " & ".join([*words[:-1], f"{words[-1]}:*"])


def _scopes(actor: Actor) -> list[tuple[str, list[Any]]]:
    """SQL conditions (constant text, parameters) for what the actor may find, one per index path:
    technicians everything; others their own records (owner index) and portal documents (partial GIN)."""
    if actor.is_technician:
        return [("TRUE", [])]
    return [
        ("visibility = 'portal'", []),
        ("visibility = 'owner' AND owner_person_id = %s", [actor.person_id]),
    ]


# Both plans return the top hits by rank and how many matches were collected. Only constant fragments
# (a scope, the type filter) are formatted into the text; every value is a parameter.
RANKED = (
    "SELECT m.record_type, m.record_id, m.number, m.title, m.state,"
    " ts_rank_cd(m.document, to_tsquery('english', %s)) AS rank, m.updated_at, (SELECT count(*) FROM m)"
    " FROM m ORDER BY rank DESC, m.updated_at DESC LIMIT %s"
)
# Plan 1: every match, through the GIN index, stopping after COMPLETE_LIMIT + 1.
ALL_MATCHES = (
    "WITH m AS MATERIALIZED (SELECT record_type, record_id, number, title, state, updated_at, document"
    " FROM records_searchdocument WHERE {scope} {types} AND document @@ to_tsquery('english', %s)"
    " LIMIT %s) "
)
# Plan 2, for a common word: walk the newest documents (the subquery's LIMIT keeps PostgreSQL from
# turning it into a bitmap scan of every match) until RANK_WINDOW matches are found.
NEWEST_MATCHES = (
    "WITH m AS MATERIALIZED (SELECT * FROM (SELECT record_type, record_id, number, title, state,"
    " updated_at, document FROM records_searchdocument WHERE {scope} {types}"
    " ORDER BY updated_at DESC LIMIT %s) recent WHERE document @@ to_tsquery('english', %s) LIMIT %s) "
)


def search(
    *, actor: Actor, q: str, record_types: list[str] | None = None, limit: int = 20
) -> list[SearchHit]:
    """Full-text search over the tenant's records and articles, best first (``ts_rank_cd``: number and
    title weigh more than the body; ties newest first), only what the actor may see: technicians find
    everything; others find what they own (their incidents, their requests) and what is published to the
    portal. ``limit`` 1..100. Returns [] for a query without words.

    Two plans, chosen by how many documents match, because PostgreSQL cannot estimate a prefix query
    (``serv:*``) and picks a plan that reads every document for a rare word: first the GIN index
    collects up to COMPLETE_LIMIT + 1 matches; if that is all of them, all are ranked. Otherwise the
    query is common, and the newest RANK_WINDOW matches are ranked (a walk down the ``updated_at`` index
    that ends early precisely because matches are frequent).
    """
    tsquery = search_tsquery(q)
    if tsquery is None:
        return []
    limit = max(1, min(limit, 100))
    types, type_params = ("AND record_type = ANY(%s)", [record_types]) if record_types else ("", [])
    rows: list[tuple[Any, ...]] = []
    with connection.cursor() as cursor:
        for scope, scope_params in _scopes(actor):
            filters = [*scope_params, *type_params]
            cursor.execute(
                ALL_MATCHES.format(scope=scope, types=types) + RANKED,
                [*filters, tsquery, COMPLETE_LIMIT + 1, tsquery, limit],
            )
            found = cursor.fetchall()
            if found and found[0][7] > COMPLETE_LIMIT:
                cursor.execute(
                    NEWEST_MATCHES.format(scope=scope, types=types) + RANKED,
                    [*filters, RECENT_LIMIT, tsquery, RANK_WINDOW, tsquery, limit],
                )
                newest = cursor.fetchall()
                if len(newest) < min(limit, RANK_WINDOW):  # old matches: keep what the first plan ranked
                    seen = {row[1] for row in newest}
                    newest += [row for row in found if row[1] not in seen]
                found = newest
            rows += found
    rows.sort(key=lambda row: (row[5], row[6]), reverse=True)
    return [SearchHit(*row[:6]) for row in rows[:limit]]


def record_ref_by_number(*, actor: Actor, number: str) -> SearchDocument:
    """The search document (kind, id, number, title) of the record numbered ``number`` (case-insensitive),
    if the actor may see that record. Raises NotFound otherwise."""
    document = SearchDocument.objects.filter(number__iexact=number.strip()).first()
    if document is None:
        raise NotFound(f"no record numbered {number}")
    try:
        record_get(actor=actor, record_type=document.record_type, record_id=document.record_id)
    except InvalidInput as exc:
        raise NotFound(f"no record numbered {number}") from exc
    return document


def record_refs(*, record_ids: list[uuid.UUID]) -> dict[uuid.UUID, SearchDocument]:
    """Number and title of many records at once (one query), for showing links. Callers pass ids the
    actor may see (the ends of links on a record they opened)."""
    return {d.record_id: d for d in SearchDocument.objects.filter(record_id__in=record_ids)}


# Saved list views of the console lists (modules/records/listing.py).


def saved_view_list(*, actor: Actor, list_name: str) -> QuerySet[SavedView]:
    """The saved views of list ``list_name`` (``incidents``, ``requests``...) the actor may apply: their
    own, and the views other technicians of this tenant shared. Technicians only (anyone else: none, as
    end users cannot create views). Ordered by name, then id."""
    if not actor.is_technician or actor.user_id is None:
        return SavedView.objects.none()
    own_or_shared = Q(owner_user_id=actor.user_id) | Q(shared=True)
    return SavedView.objects.filter(own_or_shared, list_name=list_name).order_by("name", "id")


def saved_view_get(*, actor: Actor, view_id: uuid.UUID | str, list_name: str | None = None) -> SavedView:
    """One saved view the actor may apply (see ``saved_view_list``), optionally of one list. Raises
    NotFound for a missing, malformed, invisible or other tenant's id alike (ids are UUIDv7, unique
    across tenants, so another tenant's id is simply absent from this schema)."""
    if not actor.is_technician or actor.user_id is None:
        raise NotFound("no such saved view")
    qs = SavedView.objects.filter(Q(owner_user_id=actor.user_id) | Q(shared=True))
    if list_name is not None:
        qs = qs.filter(list_name=list_name)
    try:
        return qs.get(pk=view_id)
    except (SavedView.DoesNotExist, ValidationError, ValueError, TypeError) as exc:
        raise NotFound("no such saved view") from exc
