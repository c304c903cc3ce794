"""Problem and known error reads. Problem management is the provider's work: technicians see every
problem and known error of the tenant they entered; everyone else sees none (lists are empty, a get is a
404 like a missing id)."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from django.contrib.postgres.search import SearchQuery, SearchRank
from django.core.exceptions import ValidationError
from django.db.models import Count, F, OuterRef, Q, QuerySet, Subquery
from django.utils import timezone

from controlplane.problems import NotFound
from modules.incidents import selectors as incident_selectors
from modules.people.models import GroupMembership
from modules.records.actor import Actor
from modules.records.models import SearchDocument

from .models import KnownError, Problem, ProblemSettings

KNOWN_ERROR_TYPE = "known_error"


def problem_visible(*, actor: Actor) -> QuerySet[Problem]:
    qs = Problem.objects.select_related("assigned_to", "assignment_group", "configuration_item")
    return qs if actor.is_technician else qs.none()


def problem_list(
    *,
    actor: Actor,
    state: Iterable[str] | None = None,
    assigned_to: uuid.UUID | None = None,
    assignment_group: uuid.UUID | None = None,
    open_only: bool = False,
    q: str = "",
    priority: Iterable[int] | None = None,
    assignment_group_member: uuid.UUID | None = None,
    unassigned: bool = False,
    category: str = "",
    opened_after: dt.datetime | None = None,
) -> QuerySet[Problem]:
    """Problems the actor may see, filtered. ``q`` matches the number (exact, case-insensitive) or words
    of the short description. ``assignment_group_member`` (a person id) keeps problems assigned to any
    group that person belongs to; ``unassigned`` those with no assignee; ``category`` matches exactly
    (case-insensitive); ``opened_after`` is UTC. Unordered; callers order (pagination does)."""
    qs = problem_visible(actor=actor)
    if state:
        qs = qs.filter(state__in=list(state))
    if open_only:
        qs = qs.filter(state__in=Problem.OPEN_STATES)
    if assigned_to:
        qs = qs.filter(assigned_to_id=assigned_to)
    if assignment_group:
        qs = qs.filter(assignment_group_id=assignment_group)
    if priority:
        qs = qs.filter(priority__in=list(priority))
    if assignment_group_member:
        groups = GroupMembership.objects.filter(person_id=assignment_group_member).values("group_id")
        qs = qs.filter(assignment_group_id__in=groups)
    if unassigned:
        qs = qs.filter(assigned_to__isnull=True)
    if category.strip():
        qs = qs.filter(category__iexact=category.strip())
    if opened_after:
        qs = qs.filter(opened_at__gte=opened_after)
    if q.strip():
        qs = qs.filter(Q(number__iexact=q.strip()) | Q(short_description__icontains=q.strip()))
    return qs


def problem_get(*, actor: Actor, problem_id: uuid.UUID | str) -> Problem:
    """One problem the actor may see. Raises NotFound for a missing, invisible or malformed id alike."""
    try:
        return problem_visible(actor=actor).get(pk=problem_id)
    except (Problem.DoesNotExist, ValidationError, ValueError, TypeError) as exc:
        raise NotFound("no such problem") from exc


def problem_get_by_number(*, actor: Actor, number: str) -> Problem:
    try:
        return problem_visible(actor=actor).get(number=number)
    except Problem.DoesNotExist as exc:
        raise NotFound("no such problem") from exc


def problem_incident_list(*, actor: Actor, problem: Problem, open_only: bool = False) -> QuerySet[Any]:
    """The incidents linked to ``problem`` (read through the incidents selectors), newest first.
    Empty for non-technicians."""
    if not actor.is_technician:
        return incident_selectors.incident_list(actor=actor).none()
    qs = incident_selectors.incident_list(actor=actor, open_only=open_only).filter(problem_id=problem.pk)
    return qs.order_by("-opened_at", "-id")


def known_error_visible(*, actor: Actor) -> QuerySet[KnownError]:
    qs = KnownError.objects.select_related("problem")
    return qs if actor.is_technician else qs.none()


def known_error_list(
    *,
    actor: Actor,
    q: str = "",
    state: Iterable[str] | None = None,
    problem: uuid.UUID | None = None,
) -> QuerySet[KnownError]:
    """Known errors the actor may see. ``q`` is a full-text search (PostgreSQL, English stemming,
    websearch syntax: words, "phrases", -not) over number, title, symptoms, root cause, workaround and
    permanent fix, through the records SearchDocument table; matches carry ``rank`` (title weighs more
    than the body). Unordered; callers order (``-rank`` for relevance)."""
    qs = known_error_visible(actor=actor)
    if state:
        qs = qs.filter(state__in=list(state))
    if problem:
        qs = qs.filter(problem_id=problem)
    if q.strip():
        query = SearchQuery(q.strip(), config="english", search_type="websearch")
        documents = SearchDocument.objects.filter(record_type=KNOWN_ERROR_TYPE, document=query)
        rank = documents.filter(record_id=OuterRef("pk")).annotate(r=SearchRank(F("document"), query))
        qs = qs.filter(pk__in=documents.values("record_id")).annotate(rank=Subquery(rank.values("r")[:1]))
    return qs


def known_error_get(*, actor: Actor, known_error_id: uuid.UUID | str) -> KnownError:
    """One known error the actor may see. Raises NotFound for a missing, invisible or malformed id."""
    try:
        return known_error_visible(actor=actor).get(pk=known_error_id)
    except (KnownError.DoesNotExist, ValidationError, ValueError, TypeError) as exc:
        raise NotFound("no such known error") from exc


def known_error_get_by_number(*, actor: Actor, number: str) -> KnownError:
    try:
        return known_error_visible(actor=actor).get(number=number)
    except KnownError.DoesNotExist as exc:
        raise NotFound("no such known error") from exc


def problem_settings_get(*, actor: Actor) -> ProblemSettings:
    """The tenant's problem rules (candidate thresholds). Readable by everyone who entered the tenant."""
    return ProblemSettings.objects.get(pk=1)


@dataclass
class CandidateIncident:
    id: uuid.UUID
    number: str
    short_description: str
    state: str
    opened_at: dt.datetime


@dataclass
class ProblemCandidate:
    """A group of recurring incidents that may share a cause. ``basis`` is ``configuration_item`` (same
    CI) or ``category`` (same category and subcategory). ``key`` names the group in an accept request."""

    basis: str
    key: str
    count: int
    configuration_item_id: uuid.UUID | None = None
    configuration_item_name: str = ""
    category: str = ""
    subcategory: str = ""
    incidents: list[CandidateIncident] = field(default_factory=list)

    @property
    def title(self) -> str:
        if self.basis == "configuration_item":
            return f"Recurring incidents on {self.configuration_item_name}"
        sub = f" / {self.subcategory}" if self.subcategory else ""
        return f"Recurring incidents in {self.category}{sub}"


def candidate_key(
    *, basis: str, configuration_item_id: uuid.UUID | None = None, category: str = "", subcategory: str = ""
) -> str:
    """The stable name of a candidate group: ``ci:<uuid>`` or ``category:<category>/<subcategory>``."""
    if basis == "configuration_item":
        return f"ci:{configuration_item_id}"
    return f"category:{category}/{subcategory}"


def problem_candidate_list(
    *,
    actor: Actor,
    min_incidents: int | None = None,
    within_days: int | None = None,
    now: dt.datetime | None = None,
) -> list[ProblemCandidate]:
    """Proposed problems from recurring incidents (ITIL 4 proactive problem identification; ServiceNow's
    and Jira Service Management's "create problem from similar incidents").

    Takes the incidents opened within the last ``within_days`` days before ``now`` (UTC; default the
    tenant's ``candidate_window_days``) that are not linked to a problem and not canceled, and groups
    them by configuration item and, separately, by (category, subcategory) for categorised incidents.
    Returns the groups with at least ``min_incidents`` incidents (default ``candidate_min_incidents``),
    largest first, each with its incidents newest first. An incident may appear in one CI group and one
    category group. Technicians only; everyone else gets an empty list.
    """
    if not actor.is_technician:
        return []
    rules = ProblemSettings.objects.get(pk=1)
    minimum = max(1, min_incidents if min_incidents is not None else rules.candidate_min_incidents)
    days = within_days if within_days is not None else rules.candidate_window_days
    since = (now or timezone.now()) - dt.timedelta(days=days)
    recent = (
        incident_selectors.incident_list(actor=actor, opened_after=since)
        .filter(problem__isnull=True)
        .exclude(state="canceled")
    )
    candidates: list[ProblemCandidate] = []
    by_ci = (
        recent.filter(configuration_item__isnull=False)
        .values("configuration_item_id", "configuration_item__name")
        .annotate(n=Count("id"))
        .filter(n__gte=minimum)
    )
    for row in by_ci:
        ci_id = row["configuration_item_id"]
        candidates.append(
            ProblemCandidate(
                basis="configuration_item",
                key=candidate_key(basis="configuration_item", configuration_item_id=ci_id),
                count=row["n"],
                configuration_item_id=ci_id,
                configuration_item_name=row["configuration_item__name"],
                incidents=_members(recent.filter(configuration_item_id=ci_id)),
            )
        )
    by_category = (
        recent.exclude(category="")
        .values("category", "subcategory")
        .annotate(n=Count("id"))
        .filter(n__gte=minimum)
    )
    for group in by_category:
        category, subcategory = group["category"], group["subcategory"]
        candidates.append(
            ProblemCandidate(
                basis="category",
                key=candidate_key(basis="category", category=category, subcategory=subcategory),
                count=group["n"],
                category=category,
                subcategory=subcategory,
                incidents=_members(recent.filter(category=category, subcategory=subcategory)),
            )
        )
    candidates.sort(key=lambda c: (-c.count, c.key))
    return candidates


def problem_candidate_get(
    *,
    actor: Actor,
    key: str,
    min_incidents: int | None = None,
    within_days: int | None = None,
    now: dt.datetime | None = None,
) -> ProblemCandidate:
    """The current candidate named ``key`` under the same thresholds as problem_candidate_list. Raises
    NotFound when no such group qualifies now (for instance, its incidents were linked meanwhile)."""
    found = problem_candidate_list(actor=actor, min_incidents=min_incidents, within_days=within_days, now=now)
    for candidate in found:
        if candidate.key == key:
            return candidate
    raise NotFound("no such problem candidate")


def _members(qs: QuerySet[Any]) -> list[CandidateIncident]:
    rows = qs.order_by("-opened_at", "-id").values("id", "number", "short_description", "state", "opened_at")
    return [CandidateIncident(**row) for row in rows]
