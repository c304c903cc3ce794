"""Reads shared by every tenant module: a record's comments, activity history and links."""

from __future__ import annotations

import datetime as dt
import itertools
import re
import uuid
from dataclasses import dataclass, replace
from typing import Any

from django.core.exceptions import ValidationError
from django.db import connection
from django.db.models import Q, QuerySet
from django.utils import timezone

from controlplane.problems import InvalidInput, NotFound

from .actor import Actor
from .models import ActivityEntry, Attachment, Comment, RecordLink, SavedView, SearchDocument
from .registry import kind_get, record_get


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


@dataclass(frozen=True)
class TimelineEntry:
    """One line of a record's public timeline: a comment (``body``) or a state change (``old_state`` ->
    ``new_state``, raw state values; the page names them). ``at`` is UTC; ``who`` the person or None."""

    at: Any
    who: Any
    body: str = ""
    old_state: str | None = None
    new_state: str | None = None


def timeline_public(*, actor: Actor, record_id: uuid.UUID, state_verb_prefix: str) -> list[TimelineEntry]:
    """What the requester may read of a record's life, oldest first: public comments (never work notes,
    whoever asks) and the record's own state changes (activity entries whose verb starts with
    ``state_verb_prefix``, e.g. ``"incident."``, and that record ``{"state": [old, new]}``; no other
    field of them). Two queries. The caller checked access to the record."""
    comments = Comment.objects.filter(record_id=record_id, is_work_note=False).select_related("author")
    changes = (
        ActivityEntry.objects.filter(
            record_id=record_id, verb__startswith=state_verb_prefix, changes__has_key="state"
        )
        .exclude(verb__in=TECHNICIAN_VERBS)
        .select_related("actor_person")
    )
    entries = [TimelineEntry(at=c.created_at, who=c.author, body=c.body) for c in comments]
    for e in changes:
        state = e.changes.get("state")
        if isinstance(state, list) and len(state) == 2 and state[0] != state[1]:
            entries.append(TimelineEntry(at=e.at, who=e.actor_person, old_state=state[0], new_state=state[1]))
    return sorted(entries, key=lambda entry: entry.at)


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


# The timeline of a record's console page: comments, work notes, history, SLA events, in one list.


@dataclass(frozen=True)
class TimelineChange:
    """One field change of a timeline entry, as text: ``field`` (a label), ``old`` and ``new`` ("" for a
    value that is not a pair, e.g. the task an entry is about; then ``new`` holds it)."""

    field: str
    old: str
    new: str
    pair: bool = True


@dataclass(frozen=True)
class TimelineItem:
    """One entry of a record's timeline. ``at`` is UTC (templates show it in the viewer's zone);
    ``kind`` is one of comment, work_note, state, assignment, field, approval, sla, attachment, link,
    task, created; ``internal`` marks what end users never see (work notes, internal files); ``due_at``
    is a deadline shown relative to now (SLA timers); ``url`` a download or record link."""

    at: dt.datetime
    kind: str
    title: str
    who: str
    body: str = ""
    changes: tuple[TimelineChange, ...] = ()
    internal: bool = False
    due_at: dt.datetime | None = None
    url: str = ""
    seq: int = 0


@dataclass(frozen=True)
class TimelineDeadline:
    """A running SLA timer's deadline (UTC), for the relative "due in ..." line above the timeline."""

    label: str
    due_at: dt.datetime
    breached: bool


@dataclass(frozen=True)
class Timeline:
    """What ``records/_timeline.html`` shows: entries in ``order`` ("desc": newest first, or "asc")."""

    entries: list[TimelineItem]
    order: str
    deadlines: list[TimelineDeadline]
    # The SLA timers read for the entries (``modules.sla.selectors.sla_panel_get``), for the page's SLA
    # panel to show without reading them again; None when they were not read (not a technician's page).
    sla_timers: list[Any] | None = None


# Verbs whose rows come from another table (comments) and fields that are bookkeeping, not news.
_COMMENT_VERBS = frozenset({"comment.added", "work_note.added"})
_HIDDEN_FIELDS = frozenset({"comment_id", "attachment_id", "link_id", "approval_id", "source", "target"})
_ASSIGNMENT_FIELDS = frozenset({"assigned_to", "assignment_group"})
_APPROVAL_VERBS = ("approval.", "change.vote_", "change.approve", "change.reject", "change.authorize")


def _text(value: Any) -> str:
    """A history value as text: rows (``{"id", "name"}``) and nested records by name or number, lists
    joined, ISO 8601 times in the active time zone (the viewer's, as ``|date`` shows them), None as an
    em dash, choice values with spaces (``in_progress`` -> ``in progress``)."""
    if value is None or value == "" or value == {} or value == []:
        return "—"
    if isinstance(value, dict):
        for key in ("name", "number", "task", "title", "event"):
            if value.get(key):
                return str(value[key])
        return ", ".join(f"{k.replace('_', ' ')}: {_text(v)}" for k, v in value.items() if k != "id") or "—"
    if isinstance(value, list | tuple):
        return ", ".join(_text(v) for v in value) or "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, str) and len(value) >= 19 and value[10:11] == "T":
        try:
            moment = dt.datetime.fromisoformat(value)
        except ValueError:
            return value
        if moment.tzinfo is not None:
            moment = timezone.localtime(moment)
        return moment.strftime("%Y-%m-%d %H:%M")
    if isinstance(value, str) and " " not in value:
        return value.replace("_", " ")
    return str(value)


def _changes(changes: dict[str, Any]) -> tuple[TimelineChange, ...]:
    shown = []
    for name, value in changes.items():
        if name in _HIDDEN_FIELDS:
            continue
        label = name.replace("_", " ")
        if isinstance(value, list) and len(value) == 2:
            old, new = _text(value[0]), _text(value[1])
            if old != new:  # a creation entry lists every field, the empty ones too
                shown.append(TimelineChange(label, old, new))
        else:
            shown.append(TimelineChange(label, "", _text(value), pair=False))
    return tuple(shown)


def escalation_notified_text(notified: dict[str, Any]) -> str:
    """Who an SLA escalation notified, in words ("breach_warning to 2 persons and 1 group"), from the
    ``notified`` JSON of an escalation run or its ``sla.escalated`` entry (keys ``event``, ``persons``,
    ``groups``); "" when the level notified no one by design (no event)."""
    if not notified.get("event"):
        return ""
    persons, groups = len(notified.get("persons") or []), len(notified.get("groups") or [])
    whom = " and ".join(
        f"{n} {word}{'' if n == 1 else 's'}" for n, word in ((persons, "person"), (groups, "group")) if n
    )
    return f"{notified['event']} to {whom or 'nobody'}"


def _escalation_changes(changes: dict[str, Any]) -> tuple[TimelineChange, ...]:
    """What an ``sla.escalated`` entry did, in words: the policy, who was notified of which event, and
    the actions done (reassignment, priority) when there were any."""
    shown = [TimelineChange("policy", "", str(changes.get("policy", "")), pair=False)]
    notified = escalation_notified_text(changes.get("notified") or {})
    if notified:
        shown.append(TimelineChange("notified", "", notified, pair=False))
    for name, value in (changes.get("done") or {}).items():
        if isinstance(value, list) and len(value) == 2:
            shown.append(TimelineChange(name.replace("_", " "), _text(value[0]), _text(value[1])))
        elif value:
            shown.append(TimelineChange(name.replace("_", " "), "", _text(value), pair=False))
    return tuple(shown)


def _kind_and_title(entry: ActivityEntry) -> tuple[str, str]:
    verb, changes = entry.verb, entry.changes or {}
    _, _, action = verb.partition(".")
    words = action.replace("_", " ")
    if verb == "sla.escalated":
        return "sla", f"SLA escalation at {changes.get('percent')} % of the {changes.get('timer')} target"
    if verb.startswith(_APPROVAL_VERBS):
        return "approval", f"Approval {words}" if verb.startswith("approval.") else words.capitalize()
    if verb.startswith("attachment."):
        return "attachment", f"File {words.split()[-1]}: {changes.get('file_name', '')}".rstrip(": ")
    if verb.startswith("link.") or verb.endswith(("_linked", "_unlinked")):
        return "link", f"Link {words.split()[-1]}" if verb.startswith("link.") else words.capitalize()
    if verb.startswith("task."):
        return "task", f"Task {changes.get('task', '')} {words}".replace("  ", " ")
    if verb.endswith(".created") or verb.endswith(".submitted"):
        return "created", words.capitalize()
    if "state" in changes:
        return "state", "State changed" if action in ("updated", "") else words.capitalize()
    if _ASSIGNMENT_FIELDS & set(changes):
        return "assignment", "Assignment changed"
    return "field", "Fields changed" if action == "updated" else words.capitalize()


def _sla_entries(
    actor: Actor, record_type: str, record: Any, history: list[ActivityEntry], now: dt.datetime
) -> tuple[list[TimelineItem], list[TimelineDeadline], list[Any]]:
    """Timer started / paused / resumed / stopped / breached entries of an incident's or service
    request's SLA timers (two queries, through the SLA module's own panel selector), the pauses and
    resumptions replayed from the history already read (the engine's own rules, no query)."""
    from modules.sla import engine
    from modules.sla.selectors import sla_panel_get

    panel = sla_panel_get(actor=actor, record_type=record_type, record_id=record.pk, now=now)
    if not panel:
        return [], [], panel
    opened_at = getattr(record, "opened_at", None) or record.created_at
    traces = engine.replay(
        record_type=record_type,
        opened_at=opened_at,
        entries=[engine.HistoryEntry(e.at, e.verb, e.source, e.changes or {}) for e in history],
    )
    entries: list[TimelineItem] = []
    deadlines: list[TimelineDeadline] = []
    for shown in panel:
        timer = shown.timer
        label = f"{timer.get_kind_display()} SLA"
        running = timer.stage == "running"
        entries.append(
            TimelineItem(
                timer.started_at,
                "sla",
                f"{label} timer started ({shown.policy_name})",
                "system",
                due_at=timer.due_at if running and timer.due_at and timer.due_at > now else None,
            )
        )
        segments = traces[timer.kind].segments
        for before, after in itertools.pairwise(segments):
            if before[1] is not None:
                entries.append(TimelineItem(before[1], "sla", f"{label} timer paused", "system"))
            entries.append(TimelineItem(after[0], "sla", f"{label} timer resumed", "system"))
        if timer.stage == "paused" and timer.paused_since is not None:
            entries.append(TimelineItem(timer.paused_since, "sla", f"{label} timer paused", "system"))
        if timer.breached_at is not None and timer.breached_at <= now:
            entries.append(TimelineItem(timer.breached_at, "sla", f"{label} target breached", "system"))
        if timer.stopped_at is not None:
            outcome = "met" if timer.stage == "met" else "breached"
            entries.append(
                TimelineItem(timer.stopped_at, "sla", f"{label} timer stopped: {outcome}", "system")
            )
        if running and timer.due_at is not None:
            deadlines.append(TimelineDeadline(label, timer.due_at, timer.due_at <= now))
    return entries, deadlines, panel


def timeline_get(
    *,
    actor: Actor,
    record_type: str,
    record: Any,
    order: str = "desc",
    base: str = "",
    now: dt.datetime | None = None,
) -> Timeline:
    """The timeline of one record for its console page: comments and work notes (work notes marked
    internal; end users never get them), every history entry (state, assignment and field changes,
    approvals and CAB votes, tasks, attachments, links, SLA escalations) and, for incidents and service
    requests seen by staff, the SLA timers' events (started, paused, resumed, breached, stopped) with the
    running deadlines. ``order`` "desc" (newest first, the default) or "asc"; ties keep the order things
    were written. ``base`` is the console prefix (``/t/<slug>/``) for download and record links.

    A fixed number of queries whatever the number of entries: comments, history, the linked records'
    numbers, and for incidents and requests the SLA panel's two. The caller has read ``record`` through
    its module's selector with the same actor (this checks no access to the record itself).
    """
    now = now or timezone.now()
    comments = list(comment_list(actor=actor, record_id=record.pk))
    history = list(activity_list(actor=actor, record_id=record.pk))
    others = set()
    for entry in history:
        if entry.verb.startswith("link."):
            for key in ("source", "target"):
                value = (entry.changes or {}).get(key)
                if value and value != str(record.pk):
                    others.add(uuid.UUID(value))
    refs = record_refs(record_ids=sorted(others)) if actor.is_technician else {}
    entries: list[TimelineItem] = []
    for comment in comments:
        entries.append(
            TimelineItem(
                comment.created_at,
                "work_note" if comment.is_work_note else "comment",
                "Work note" if comment.is_work_note else "Comment",
                str(comment.author) if comment.author else "system",
                body=comment.body,
                internal=comment.is_work_note,
            )
        )
    for entry in history:
        if entry.verb in _COMMENT_VERBS:
            continue
        kind, title = _kind_and_title(entry)
        changes = entry.changes or {}
        url = ""
        if kind == "attachment" and entry.verb == "attachment.added" and changes.get("attachment_id"):
            url = f"{base}attachments/{changes['attachment_id']}/"
        if entry.verb.startswith("link."):
            other_id = (
                changes.get("target") if changes.get("source") == str(record.pk) else changes.get("source")
            )
            ref = refs.get(uuid.UUID(other_id)) if other_id else None
            if ref is not None:
                reading = (
                    RecordLink.Kind(changes["kind"]).label
                    if changes.get("source") == str(record.pk)
                    else (RecordLink.INVERSE.get(changes.get("kind", ""), ""))
                )
                title = f"{title}: {reading} {ref.number} {ref.title}"
                url = f"{base}{kind_get(ref.record_type).console_path.format(number=ref.number)}"
        who = str(entry.actor_person) if entry.actor_person else entry.source
        internal = entry.verb.startswith(("attachment.", "link.")) and bool(changes.get("internal"))
        shown = _escalation_changes(changes) if entry.verb == "sla.escalated" else _changes(changes)
        entries.append(TimelineItem(entry.at, kind, title, who, changes=shown, internal=internal, url=url))
    deadlines: list[TimelineDeadline] = []
    sla_timers = None
    if record_type in ("incident", "service_request") and actor.is_technician:
        sla_entries, deadlines, sla_timers = _sla_entries(actor, record_type, record, history, now)
        entries += sla_entries
    numbered = [replace(e, seq=i) for i, e in enumerate(sorted(entries, key=lambda e: e.at))]
    descending = order != "asc"
    numbered.sort(key=lambda e: (e.at, e.seq), reverse=descending)
    return Timeline(
        entries=numbered, order="desc" if descending else "asc", deadlines=deadlines, sla_timers=sla_timers
    )


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
