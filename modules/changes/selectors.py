"""Change reads, always scoped to what the actor may see.

Technicians see every change of the tenant they entered; persons with the tenant role ``cab_member`` see
every change too (they vote on them, ServiceNow's CAB workbench shows the whole schedule); everyone else
(end users, approvers, client admins) sees none, so their reads answer 404 like a missing id.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any

from django.core.exceptions import ValidationError
from django.db.models import Q, QuerySet

from controlplane.permissions import P
from controlplane.problems import NotFound, PermissionDenied
from modules.cmdb.selectors import ImpactedCI, ci_impact_get
from modules.people.models import GroupMembership
from modules.records.actor import Actor

from .models import (
    BlackoutWindow,
    CabMember,
    CabVote,
    Change,
    ChangeCI,
    ChangeSettings,
    RiskQuestion,
    StandardChangeTemplate,
)

# Other changes whose window can clash with this one: submitted and not yet done. Drafts are not plans
# yet; changes in review or later have finished their work.
CONFLICT_STATES = (
    Change.State.ASSESS,
    Change.State.AUTHORISE,
    Change.State.SCHEDULED,
    Change.State.IMPLEMENT,
)
IMPACT_DEPTH = 6


def may_see_changes(actor: Actor) -> bool:
    """Technicians and the tenant's CAB members (role ``cab_member``) see changes; nobody else does."""
    return actor.may(P.CHANGE_READ)


def _require_viewer(actor: Actor) -> None:
    """Lists of the change module are refused (403) to actors who see no changes; single records answer
    404 instead, like missing ids."""
    if not may_see_changes(actor):
        raise PermissionDenied("only technicians and CAB members see changes")


def change_visible(*, actor: Actor) -> QuerySet[Change]:
    qs = Change.objects.select_related("requested_by", "assigned_to", "assignment_group", "template")
    return qs if may_see_changes(actor) else qs.none()


def change_list(
    *,
    actor: Actor,
    state: Iterable[str] | None = None,
    change_type: Iterable[str] | None = None,
    open_only: bool = False,
    q: str = "",
    starts_after: dt.datetime | None = None,
    starts_before: dt.datetime | None = None,
    risk: Iterable[str] | None = None,
    assignment_group: uuid.UUID | None = None,
    assigned_to: uuid.UUID | None = None,
    assignment_group_member: uuid.UUID | None = None,
    unassigned: bool = False,
    category: str = "",
    created_after: dt.datetime | None = None,
) -> QuerySet[Change]:
    """Changes the actor may see, filtered. ``q`` matches the number (exact, case-insensitive) or words of
    the short description; ``starts_after``/``starts_before`` bound ``planned_start`` (UTC);
    ``assignment_group_member`` (a person id) keeps changes assigned to any group that person belongs to;
    ``unassigned`` those with no assignee; ``category`` matches exactly (case-insensitive);
    ``created_after`` bounds ``created_at`` (UTC). Unordered.
    Raises PermissionDenied for actors who see no changes."""
    _require_viewer(actor)
    qs = change_visible(actor=actor)
    if state:
        qs = qs.filter(state__in=list(state))
    if change_type:
        qs = qs.filter(change_type__in=list(change_type))
    if open_only:
        qs = qs.exclude(state__in=Change.FINAL_STATES)
    if starts_after:
        qs = qs.filter(planned_start__gte=starts_after)
    if starts_before:
        qs = qs.filter(planned_start__lt=starts_before)
    if risk:
        qs = qs.filter(risk__in=list(risk))
    if assignment_group:
        qs = qs.filter(assignment_group_id=assignment_group)
    if assigned_to:
        qs = qs.filter(assigned_to_id=assigned_to)
    if assignment_group_member:
        groups = GroupMembership.objects.filter(person_id=assignment_group_member).values("group_id")
        qs = qs.filter(assignment_group_id__in=groups)
    if unassigned:
        qs = qs.filter(assigned_to__isnull=True)
    if category.strip():
        qs = qs.filter(category__iexact=category.strip())
    if created_after:
        qs = qs.filter(created_at__gte=created_after)
    if q.strip():
        qs = qs.filter(Q(number__iexact=q.strip()) | Q(short_description__icontains=q.strip()))
    return qs


def change_get(*, actor: Actor, change_id: uuid.UUID | str) -> Change:
    """One change the actor may see. Raises NotFound for a missing, invisible or malformed id alike."""
    try:
        return change_visible(actor=actor).get(pk=change_id)
    except (Change.DoesNotExist, ValidationError, ValueError, TypeError) as exc:
        raise NotFound("no such change") from exc


def change_get_by_number(*, actor: Actor, number: str) -> Change:
    try:
        return change_visible(actor=actor).get(number=number)
    except Change.DoesNotExist as exc:
        raise NotFound("no such change") from exc


# Changes whose work is authorised and not finished: their planned window is a maintenance window.
APPROVED_STATES = (Change.State.SCHEDULED, Change.State.IMPLEMENT)


def change_maintenance_get(
    *, actor: Actor, ci_ids: Iterable[uuid.UUID], at: dt.datetime
) -> dict[uuid.UUID, tuple[uuid.UUID, str]]:
    """CIs under maintenance at ``at`` (aware): CI id -> (change id, "CHG0000042 short description") for
    each of ``ci_ids`` among the affected CIs of an approved change (scheduled or implementing) whose
    planned window [planned_start, planned_end) holds ``at``; the earliest-starting change when several
    do. Monitoring mutes such CIs' alerts (docs/decisions/0018-agent-gateway.md, "Alerts → incidents").
    Empty for actors who see no changes."""
    ids = list(ci_ids)
    if not ids or not may_see_changes(actor):
        return {}
    rows = (
        ChangeCI.objects.filter(
            configuration_item_id__in=ids,
            change__state__in=APPROVED_STATES,
            change__planned_start__lte=at,
            change__planned_end__gt=at,
        )
        .order_by("change__planned_start", "change_id")
        .values_list("configuration_item_id", "change_id", "change__number", "change__short_description")
    )
    found: dict[uuid.UUID, tuple[uuid.UUID, str]] = {}
    for ci_id, change_id, number, title in rows:
        found.setdefault(ci_id, (change_id, f"{number} {title}"[:200]))
    return found


def change_ci_list(*, actor: Actor, change: Change) -> list[dict[str, Any]]:
    """The change's affected CIs, in the order they were added: ``{"id", "number", "name", "ci_class"}``.
    The caller checked access to the change."""
    rows = ChangeCI.objects.filter(change=change).values_list(
        "configuration_item_id",
        "configuration_item__number",
        "configuration_item__name",
        "configuration_item__ci_class",
    )
    return [{"id": i, "number": n, "name": name, "ci_class": c} for i, n, name, c in rows]


def _cmdb_reader(actor: Actor) -> Actor:
    """Who reads the CMDB graph for a change rule. Impact and conflicts are properties of the change, so
    they are computed over the whole CMDB whoever looks (a CAB member, who may not browse the CMDB,
    still sees the conflicts they vote on); only results about CIs the change touches are returned."""
    return actor if actor.is_technician else Actor.system(source=actor.source, person=actor.person)


def _impacted(reader: Actor, ci_id: uuid.UUID, cache: dict[uuid.UUID, list[ImpactedCI]]) -> list[ImpactedCI]:
    if ci_id not in cache:
        try:
            cache[ci_id] = ci_impact_get(actor=reader, ci_id=ci_id, depth=IMPACT_DEPTH)
        except NotFound:
            cache[ci_id] = []
    return cache[ci_id]


def change_impact_get(*, actor: Actor, change: Change) -> dict[str, Any]:
    """The impact of the change's affected CIs (CMDB impact analysis, depth 6): ``{"summary": {"cis",
    "impacted_cis", "business_services"}, "cis": [{"ci": {...}, "impacted": [{"id", "number", "name",
    "ci_class", "depth", "path", "via"}]}]}``. ``impacted_cis`` counts distinct CIs reached that are not
    themselves affected; ``business_services`` counts distinct business services among affected and
    impacted CIs. The caller checked access to the change."""
    reader = _cmdb_reader(actor)
    cache: dict[uuid.UUID, list[ImpactedCI]] = {}
    affected = change_ci_list(actor=actor, change=change)
    affected_ids = {ci["id"] for ci in affected}
    impacted: dict[uuid.UUID, ImpactedCI] = {}
    per_ci = []
    for ci in affected:
        found = _impacted(reader, ci["id"], cache)
        per_ci.append({"ci": ci, "impacted": [asdict(item) for item in found]})
        for item in found:
            if item.id not in affected_ids:
                impacted.setdefault(item.id, item)
    services = {ci["id"] for ci in affected if ci["ci_class"] == "business_service"} | {
        item.id for item in impacted.values() if item.is_business_service
    }
    summary = {"cis": len(affected), "impacted_cis": len(impacted), "business_services": len(services)}
    return {"summary": summary, "cis": per_ci}


def _window_overlaps(start: dt.datetime, end: dt.datetime) -> Q:
    """Half-open windows [start, end) overlap when each starts before the other ends."""
    return Q(planned_start__lt=end, planned_end__gt=start)


def change_conflict_list(*, actor: Actor, change: Change) -> list[dict[str, Any]]:
    """Schedule conflicts of a change with a planned window, as ServiceNow's conflict detection flags them.

    - ``{"kind": "change", "change_id", "number", "short_description", "state", "planned_start",
      "planned_end", "same_cis": [ci], "dependent_cis": [ci]}`` for every other open change (assess,
      authorise, scheduled, implement) whose planned window overlaps this one and that touches one of this
      change's CIs (``same_cis``) or is linked to them by an impact path (``dependent_cis``: the CIs, of
      either change, that depend on a CI of the other change, by ``ci_impact_get`` to depth 6; so a
      change to a server conflicts with a change to an application running on it, seen from both
      sides). A ``ci`` is ``{"id", "number", "name"}``.
    - ``{"kind": "blackout", "blackout_id", "name", "start", "end", "reason"}`` for every blackout window
      overlapping the change's window.
    Windows are half-open UTC intervals; times are ISO 8601 strings (JSON-ready, stored as is). A change
    without a full planned window has no conflicts. Changes come first (by planned start, number), then
    blackouts (by start). The caller checked access to the change.
    """
    if change.planned_start is None or change.planned_end is None:
        return []
    reader = _cmdb_reader(actor)
    cache: dict[uuid.UUID, list[ImpactedCI]] = {}
    names: dict[uuid.UUID, dict[str, Any]] = {}

    def cis_of(change_ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, set[uuid.UUID]]:
        out: dict[uuid.UUID, set[uuid.UUID]] = {}
        rows = ChangeCI.objects.filter(change_id__in=list(change_ids)).values_list(
            "change_id", "configuration_item_id", "configuration_item__number", "configuration_item__name"
        )
        for change_id, ci_id, number, name in rows:
            out.setdefault(change_id, set()).add(ci_id)
            names[ci_id] = {"id": str(ci_id), "number": number, "name": name}
        return out

    def reach(ci_ids: set[uuid.UUID]) -> set[uuid.UUID]:
        return {item.id for ci in ci_ids for item in _impacted(reader, ci, cache)}

    mine = cis_of([change.pk]).get(change.pk, set())
    mine_reach = reach(mine)
    others = list(
        Change.objects.filter(state__in=CONFLICT_STATES)
        .filter(_window_overlaps(change.planned_start, change.planned_end))
        .exclude(pk=change.pk)
        .order_by("planned_start", "number")
    )
    theirs_by_change = cis_of(other.pk for other in others)
    conflicts: list[dict[str, Any]] = []
    for other in others:
        theirs = theirs_by_change.get(other.pk, set())
        same = mine & theirs
        dependent = ((mine_reach & theirs) | (reach(theirs) & mine)) - same
        if not same and not dependent:
            continue
        assert other.planned_start is not None and other.planned_end is not None
        conflicts.append(
            {
                "kind": "change",
                "change_id": str(other.pk),
                "number": other.number,
                "short_description": other.short_description,
                "state": other.state,
                "planned_start": other.planned_start.isoformat(),
                "planned_end": other.planned_end.isoformat(),
                "same_cis": sorted((names[ci] for ci in same), key=lambda c: c["number"]),
                "dependent_cis": sorted((names[ci] for ci in dependent), key=lambda c: c["number"]),
            }
        )
    blackouts = BlackoutWindow.objects.filter(start__lt=change.planned_end, end__gt=change.planned_start)
    for blackout in blackouts.order_by("start", "id"):
        conflicts.append(
            {
                "kind": "blackout",
                "blackout_id": str(blackout.pk),
                "name": blackout.name,
                "start": blackout.start.isoformat(),
                "end": blackout.end.isoformat(),
                "reason": blackout.reason,
            }
        )
    return conflicts


@dataclass(frozen=True)
class CabTally:
    """Where a change stands with its CAB. ``outcome``: ``not_required`` (standard changes), ``pending``,
    ``authorised`` or ``rejected`` (see ``cab_tally_get``). Counts are of counted votes only; ``ignored``
    counts votes of persons who are no longer (emergency) CAB members."""

    board: str
    quorum: int
    approve: int
    reject: int
    abstain: int
    ignored: int
    outcome: str

    @property
    def counted(self) -> int:
        return self.approve + self.reject + self.abstain


def cab_tally_get(*, change: Change) -> CabTally:
    """Apply the CAB rule to the votes cast on a change.

    The rule (ITIL 4 change authority; ServiceNow's CAB approval with a minimum of approvers):
    - normal changes are decided by the CAB (quorum ``ChangeSettings.cab_quorum``), emergency changes by
      the emergency CAB (members with ``emergency=True``, quorum ``ChangeSettings.ecab_quorum``);
      standard changes are pre-authorised (``not_required``);
    - a vote counts only while its voter is a current member of that board (removing a member drops
      their vote from the count);
    - ``pending`` while counted votes (approve + reject + abstain) < quorum;
    - ``authorised`` when counted votes >= quorum and approvals > rejections;
    - ``rejected`` when counted votes >= quorum and rejections >= approvals (a tie, or a quorum of
      abstentions, does not authorise).
    """
    if change.change_type == Change.Type.STANDARD:
        return CabTally("none", 0, 0, 0, 0, 0, "not_required")
    rules = ChangeSettings.objects.get(pk=1)
    emergency = change.change_type == Change.Type.EMERGENCY
    members = CabMember.objects.filter(emergency=True) if emergency else CabMember.objects.all()
    member_ids = set(members.values_list("person_id", flat=True))
    counts = {"approve": 0, "reject": 0, "abstain": 0}
    ignored = 0
    for person_id, decision in CabVote.objects.filter(change=change).values_list("member_id", "decision"):
        if person_id in member_ids:
            counts[decision] += 1
        else:
            ignored += 1
    quorum = rules.ecab_quorum if emergency else rules.cab_quorum
    if sum(counts.values()) < quorum:
        outcome = "pending"
    elif counts["approve"] > counts["reject"]:
        outcome = "authorised"
    else:
        outcome = "rejected"
    return CabTally(
        "ecab" if emergency else "cab",
        quorum,
        counts["approve"],
        counts["reject"],
        counts["abstain"],
        ignored,
        outcome,
    )


def cab_get(*, actor: Actor, change: Change) -> dict[str, Any]:
    """Where the change stands with its CAB: the tally (``cab_tally_get``: board, quorum, approve,
    reject, abstain, ignored, outcome) and ``votes``, every vote cast, by the time of its current
    decision (a vote of a former member is listed but not counted). The caller checked access to the change."""
    tally = cab_tally_get(change=change)
    votes = list(CabVote.objects.filter(change=change).select_related("member"))
    return {**asdict(tally), "votes": votes}


def cab_member_list(*, actor: Actor) -> QuerySet[CabMember]:
    """The CAB (emergency members flagged). Technicians and CAB members only (PermissionDenied)."""
    _require_viewer(actor)
    return CabMember.objects.select_related("person")


def cab_member_get(*, actor: Actor, member_id: int) -> CabMember:
    """One CAB member. Raises NotFound for an unknown id or an actor who sees no changes."""
    member = CabMember.objects.select_related("person").filter(pk=member_id).first()
    if member is None or not may_see_changes(actor):
        raise NotFound("no such CAB member")
    return member


def template_list(*, actor: Actor, active_only: bool = False) -> QuerySet[StandardChangeTemplate]:
    """Standard change templates by name. Technicians and CAB members only (PermissionDenied)."""
    _require_viewer(actor)
    qs = StandardChangeTemplate.objects.all()
    return qs.filter(active=True) if active_only else qs


def template_get(*, actor: Actor, template_id: uuid.UUID | str) -> StandardChangeTemplate:
    """One template. Raises NotFound for a missing or malformed id and for actors who see no changes."""
    try:
        if not may_see_changes(actor):
            raise StandardChangeTemplate.DoesNotExist
        return StandardChangeTemplate.objects.get(pk=template_id)
    except (StandardChangeTemplate.DoesNotExist, ValidationError, ValueError, TypeError) as exc:
        raise NotFound("no such standard change template") from exc


def blackout_list(*, actor: Actor) -> QuerySet[BlackoutWindow]:
    """Blackout windows by start. Technicians and CAB members only (PermissionDenied)."""
    _require_viewer(actor)
    return BlackoutWindow.objects.all()


def blackout_get(*, actor: Actor, blackout_id: uuid.UUID | str) -> BlackoutWindow:
    """One blackout window. Raises NotFound for a missing or malformed id and for non-viewers."""
    try:
        if not may_see_changes(actor):
            raise BlackoutWindow.DoesNotExist
        return BlackoutWindow.objects.get(pk=blackout_id)
    except (BlackoutWindow.DoesNotExist, ValidationError, ValueError, TypeError) as exc:
        raise NotFound("no such blackout window") from exc


def change_settings_get(*, actor: Actor) -> ChangeSettings:
    """The tenant's CAB rules (quorums). Technicians and CAB members only (PermissionDenied)."""
    _require_viewer(actor)
    return ChangeSettings.objects.get(pk=1)


def risk_question_list(*, actor: Actor) -> QuerySet[RiskQuestion]:
    """The active risk questions, in order. Technicians and CAB members only (PermissionDenied)."""
    _require_viewer(actor)
    return RiskQuestion.objects.filter(active=True)
