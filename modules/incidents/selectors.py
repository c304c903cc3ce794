"""Incident reads, always scoped to what the actor may see: technicians see every incident of the
tenant they entered; the tenant's client admins see every incident of their organisation (the tenant);
everyone else sees only incidents where they are the caller."""

from __future__ import annotations

import datetime as dt
import re
import uuid
import zoneinfo
from collections.abc import Iterable
from typing import Any

from django.core.exceptions import ValidationError
from django.db.models import Count, F, Q, QuerySet, Sum
from django.db.models.functions import TruncDate

from controlplane.permissions import P
from controlplane.problems import NotFound
from modules.people.models import GroupMembership
from modules.records.actor import Actor

from .models import Incident, IncidentSettings, PriorityRule, ResolutionCode, SatisfactionResponse


def incident_visible(*, actor: Actor) -> QuerySet[Incident]:
    qs = Incident.objects.select_related(
        "caller", "assigned_to", "assignment_group", "configuration_item", "problem"
    )
    if actor.may(P.ORGANISATION_READ):  # client admins see their organisation's
        return qs
    return qs.filter(caller_id=actor.person_id)


def incident_list(
    *,
    actor: Actor,
    state: Iterable[str] | None = None,
    priority: Iterable[int] | None = None,
    assigned_to: uuid.UUID | None = None,
    assignment_group: uuid.UUID | None = None,
    caller: uuid.UUID | None = None,
    open_only: bool = False,
    q: str = "",
    opened_after: dt.datetime | None = None,
    opened_before: dt.datetime | None = None,
    assignment_group_member: uuid.UUID | None = None,
    unassigned: bool = False,
    category: str = "",
) -> QuerySet[Incident]:
    """Incidents the actor may see, filtered. ``q`` matches number (exact, case-insensitive) or words of
    the short description. ``assignment_group_member`` (a person id) keeps incidents assigned to any
    group that person belongs to; ``unassigned`` those with no assignee; ``category`` matches exactly
    (case-insensitive). Unordered; callers order (pagination does)."""
    qs = incident_visible(actor=actor)
    if state:
        qs = qs.filter(state__in=list(state))
    if open_only:
        qs = qs.filter(state__in=Incident.OPEN_STATES)
    if priority:
        qs = qs.filter(priority__in=list(priority))
    if assigned_to:
        qs = qs.filter(assigned_to_id=assigned_to)
    if assignment_group:
        qs = qs.filter(assignment_group_id=assignment_group)
    if caller:
        qs = qs.filter(caller_id=caller)
    if assignment_group_member:
        groups = GroupMembership.objects.filter(person_id=assignment_group_member).values("group_id")
        qs = qs.filter(assignment_group_id__in=groups)
    if unassigned:
        qs = qs.filter(assigned_to__isnull=True)
    if category.strip():
        qs = qs.filter(category__iexact=category.strip())
    if opened_after:
        qs = qs.filter(opened_at__gte=opened_after)
    if opened_before:
        qs = qs.filter(opened_at__lt=opened_before)
    if q.strip():
        qs = qs.filter(Q(number__iexact=q.strip()) | Q(short_description__icontains=q.strip()))
    return qs


def incident_get(*, actor: Actor, incident_id: uuid.UUID | str) -> Incident:
    """One incident the actor may see. Raises NotFound for a missing, invisible or malformed id alike."""
    try:
        return incident_visible(actor=actor).get(pk=incident_id)
    except (Incident.DoesNotExist, ValidationError, ValueError, TypeError) as exc:
        raise NotFound("no such incident") from exc


def incident_get_by_number(*, actor: Actor, number: str) -> Incident:
    try:
        return incident_visible(actor=actor).get(number=number)
    except Incident.DoesNotExist as exc:
        raise NotFound("no such incident") from exc


def incident_settings_get(*, actor: Actor) -> IncidentSettings:
    """The tenant's incident rules (reopen window, auto-close period)."""
    return IncidentSettings.objects.get(pk=1)


def priority_matrix_get(*, actor: Actor) -> list[PriorityRule]:
    return list(PriorityRule.objects.all())


def resolution_code_list(*, actor: Actor) -> QuerySet[ResolutionCode]:
    return ResolutionCode.objects.filter(active=True)


IMPACT_DEPTH = 3
KNOWN_ERROR_MATCHES = 10


def incident_ci_impact(*, actor: Actor, incident: Incident, depth: int = IMPACT_DEPTH) -> list[Any]:
    """What a failure of the incident's configuration item reaches: ``modules.cmdb.selectors.ci_impact_get``
    (a list of ``ImpactedCI``: number, name, class, depth in hops, explaining path; nearest first) up to
    ``depth`` hops (3 by default, enough for CI -> application -> business service).

    Technicians only, as the impact is the service desk's working data (ITIL 4 incident management: assess
    impact from the CMDB; ServiceNow shows the CI's business services on the incident form to the
    ``itil`` role). Empty for anyone else, for an incident without a CI, and for a CI the actor cannot see.
    The caller checked access to ``incident``."""
    from modules.cmdb import selectors as cmdb_selectors

    if not actor.is_technician or incident.configuration_item_id is None:
        return []
    try:
        return cmdb_selectors.ci_impact_get(actor=actor, ci_id=incident.configuration_item_id, depth=depth)
    except NotFound:
        return []


WORD = re.compile(r"\w+")
# Words too common to help a search (PostgreSQL's English configuration ignores them anyway).
QUERY_STOP_WORDS = frozenset(
    [
        "the",
        "and",
        "for",
        "with",
        "from",
        "not",
        "are",
        "was",
        "were",
        "has",
        "have",
        "had",
        "but",
        "can",
        "cannot",
        "all",
        "any",
        "this",
        "that",
        "these",
        "those",
        "when",
        "what",
        "which",
        "who",
        "our",
        "your",
        "their",
        "its",
        "out",
        "off",
        "into",
        "onto",
        "over",
        "under",
        "again",
    ]
)


def known_error_query(incident: Incident) -> str:
    """The known error search an incident starts: its short description's words of three or more
    letters (not numbers, not the commonest English words) joined by ``or`` (websearch syntax), so a
    known error sharing some of the words is found and ranked, and the technician sees a readable query
    in the search box ("printer or floor or jams" for "Printer on floor 2 jams")."""
    words: dict[str, str] = {}  # lower-case word -> its first spelling
    for word in WORD.findall(incident.short_description):
        if len(word) >= 3 and not word.isdigit() and word.lower() not in QUERY_STOP_WORDS:
            words.setdefault(word.lower(), word)
    return " or ".join(list(words.values())[:12])


def incident_known_error_list(*, actor: Actor, incident: Incident, limit: int = KNOWN_ERROR_MATCHES) -> Any:
    """Known errors matching the incident's short description, best match first (at most ``limit``).

    The problems module's full-text known error search (``modules.problems.selectors.known_error_list``,
    English stemming) for any word of the short description (``known_error_query``: a long description
    rarely shares every word with a known error; ranking puts the most shared words first), over draft and
    published known errors
    (retired ones no longer apply), ordered by rank then most recently updated; the same search the
    incident page's known error box runs. ITIL 4 problem management: known errors and their workarounds
    are offered to incident handling. Known errors are technicians' data, so anyone else gets an empty
    list. The caller checked access to ``incident``."""
    from modules.problems import selectors as problem_selectors  # it imports this module: import late

    q = known_error_query(incident)
    qs = problem_selectors.known_error_list(actor=actor, q=q, state=["draft", "published"])
    if not q:
        return qs.none()
    return qs.order_by(F("rank").desc(nulls_last=True), "-updated_at", "-id")[:limit]


def incident_survey_pending_list(*, actor: Actor) -> QuerySet[Incident]:
    """The actor's own resolved or closed incidents (as caller) whose satisfaction survey is unanswered,
    most recently resolved first: what the portal offers to rate. Empty for an actor without a person."""
    if actor.person_id is None:
        return Incident.objects.none()
    return Incident.objects.filter(
        caller_id=actor.person_id,
        state__in=(Incident.State.RESOLVED, Incident.State.CLOSED),
        satisfaction__isnull=True,
    ).order_by("-resolved_at", "-id")


def incident_survey_get(*, actor: Actor, incident: Incident) -> SatisfactionResponse | None:
    """The survey response of an incident the actor may see (callers see their own incidents only, so
    only theirs), or None when unanswered."""
    return SatisfactionResponse.objects.filter(incident=incident).select_related("person").first()


def satisfaction_rollup_counts(
    *, since: dt.date, time_zone: str
) -> dict[tuple[str, dt.date], dict[str, int]]:
    """The daily rollup's satisfaction counters recomputed from the survey table, for days on or after
    ``since`` (local dates in the IANA ``time_zone``): ``{("incident", day): {"satisfaction_sum": n,
    "satisfaction_count": m}}``, the day being the local date of ``answered_at``. Registered in
    ``controlplane.workindex.services.ROLLUP_CONTRIBUTORS``, so the nightly rebuild recomputes it."""
    zone = zoneinfo.ZoneInfo(time_zone)
    rows = (
        SatisfactionResponse.objects.annotate(day=TruncDate("answered_at", tzinfo=zone))
        .filter(day__gte=since)
        .values("day")
        .annotate(total=Sum("score"), answers=Count("id"))
        .order_by("day")
    )
    return {
        ("incident", row["day"]): {"satisfaction_sum": row["total"], "satisfaction_count": row["answers"]}
        for row in rows
    }
