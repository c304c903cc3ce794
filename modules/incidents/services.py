"""Incident writes. Keyword-only, one transaction each, an activity entry for every change.

Rules follow ServiceNow's incident model, the one most MSP clients come from:
- priority = the tenant's impact x urgency matrix (ITIL 4 incident management practice);
- New/In Progress/On Hold are open; On Hold needs a reason; Resolve needs a resolution code and notes;
  Resolved -> Closed (by a technician, or automatically after ``autoclose_after_days``);
- Resolved can be reopened; Closed can be reopened only within ``reopen_window_days`` of closing;
- Canceled is final; Closed and Canceled incidents cannot be edited.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from typing import Any

from django.db import IntegrityError, connection, models, transaction
from django.utils import timezone

from controlplane.dashboards.services import dashboard_category_add, dashboard_category_move
from controlplane.permissions import P
from controlplane.problems import Conflict, InvalidInput, InvalidTransition, NotFound, PermissionDenied
from controlplane.workindex.services import (
    workindex_local_day,
    workindex_rollup_add,
    workindex_rollup_opened,
    workindex_rollup_record,
    workindex_upsert,
)
from modules.notifications.services import notification_emit
from modules.people.models import Group, Person
from modules.records.actor import Actor
from modules.records.services import (
    activity_record,
    comment_add,
    history_value,
    number_next,
    search_document_set,
)

from .models import Impact, Incident, IncidentSettings, PriorityRule, ResolutionCode, SatisfactionResponse
from .workindex import incident_work_entry


def _sla(incident: Incident) -> None:
    """Recompute the incident's SLA timers from its history (same transaction, after the entry)."""
    from modules.sla.services import sla_refresh

    sla_refresh(record_type=RECORD_TYPE, record_id=incident.pk)


RECORD_TYPE = "incident"
CLEARABLE_FIELDS = frozenset({"caller", "assignment_group", "assigned_to", "configuration_item"})
# The matrix is one record per tenant; its history hangs off this fixed id.
PRIORITY_MATRIX_ID = uuid.uuid5(uuid.NAMESPACE_URL, "msp-itsm:priority-matrix")
INCIDENT_SETTINGS_ID = uuid.uuid5(uuid.NAMESPACE_URL, "msp-itsm:incident-settings")
EDITABLE_FIELDS = (
    "short_description",
    "description",
    "category",
    "subcategory",
    "contact_type",
    "impact",
    "urgency",
    "assignment_group",
    "assigned_to",
    "caller",
    "configuration_item",
)


class IncidentNotEditable(Conflict):
    slug = "incident-not-editable"
    title = "Closed and canceled incidents cannot be edited"


def priority_for(*, impact: int, urgency: int) -> int:
    """Priority (1 Critical .. 5 Planning) from the tenant's matrix. Raises InvalidInput for a missing cell."""
    priority = (
        PriorityRule.objects.filter(impact=impact, urgency=urgency).values_list("priority", flat=True).first()
    )
    if priority is None:
        raise InvalidInput(
            f"no priority for impact {impact} x urgency {urgency}",
            errors=[{"field": "impact", "message": "no matrix cell for this impact and urgency"}],
        )
    return int(priority)


def _require_technician(actor: Actor) -> None:
    if not actor.is_technician:
        raise PermissionDenied("only technicians may do this")


def _index(incident: Incident) -> None:
    """Write the incident's search document (found by technicians and by its caller) and its row of the
    cross-client work index (controlplane.workindex), in the caller's transaction."""
    workindex_upsert(entry=incident_work_entry(incident))
    search_document_set(
        record_type=RECORD_TYPE,
        record_id=incident.pk,
        number=incident.number,
        title=incident.short_description,
        body=incident.description,
        state=incident.state,
        visibility="owner",
        owner_person_id=incident.caller_id,
    )


def incident_search_refresh(*, incident_ids: list[uuid.UUID] | None = None) -> int:
    """Rewrite the search documents of many incidents in one statement (after an import, or all of them
    with ``incident_ids=None``). Same content as the per-incident write. Returns the number of rows."""
    where, params = ("WHERE i.id = ANY(%s)", [incident_ids]) if incident_ids is not None else ("", [])
    with connection.cursor() as cursor:
        # The WHERE fragment is one of two constants; every value is a parameter.
        cursor.execute(
            "INSERT INTO records_searchdocument"  # noqa: S608
            " (record_id, record_type, number, title, state, visibility, owner_person_id, updated_at, document)"
            " SELECT i.id, %s, i.number, left(i.short_description, 300), i.state, 'owner', i.caller_id, i.updated_at,"
            " setweight(to_tsvector('english', i.number || ' ' || i.short_description), 'A')"
            " || setweight(to_tsvector('english', i.description), 'B')"
            f" FROM incidents_incident i {where}"
            " ON CONFLICT (record_id) DO UPDATE SET number = EXCLUDED.number, title = EXCLUDED.title,"
            " state = EXCLUDED.state, visibility = EXCLUDED.visibility,"
            " owner_person_id = EXCLUDED.owner_person_id, updated_at = EXCLUDED.updated_at,"
            " document = EXCLUDED.document",
            [RECORD_TYPE, *params],
        )
        return cursor.rowcount


@transaction.atomic
def incident_create(
    *,
    actor: Actor,
    short_description: str,
    description: str = "",
    caller: Person | None = None,
    category: str = "",
    subcategory: str = "",
    contact_type: str | None = None,
    impact: int = 2,
    urgency: int = 2,
    assignment_group: Group | None = None,
    assigned_to: Person | None = None,
    configuration_item: Any | None = None,
) -> Incident:
    """Open a new incident (state New) with the next ``INC`` number of this tenant.

    End users always report for themselves (caller = their person, no assignment). ``configuration_item``
    is the affected CI (a cmdb.ConfigurationItem the caller of this service fetched for the actor through
    ``modules.cmdb.selectors``, as ServiceNow's incident ``cmdb_ci``); end users may name one of their own
    CIs. Raises InvalidInput for an empty short description or an impact/urgency without a matrix cell.
    """
    if not short_description.strip():
        raise InvalidInput(
            "short_description is required", errors=[{"field": "short_description", "message": "required"}]
        )
    if not actor.is_technician:
        # End users report for themselves; impact (how many are affected) is the service desk's to judge.
        caller, assignment_group, assigned_to = actor.person, None, None
        contact_type, impact = Incident.ContactType.PORTAL, Impact.LOW
    incident = Incident(
        number=number_next(prefix="INC"),
        caller=caller or actor.person,
        opened_by=actor.person,
        opened_at=timezone.now(),
        short_description=short_description.strip(),
        description=description,
        category=category,
        subcategory=subcategory,
        contact_type=contact_type or Incident.ContactType.PORTAL,
        impact=impact,
        urgency=urgency,
        priority=priority_for(impact=impact, urgency=urgency),
        assignment_group=assignment_group,
        assigned_to=assigned_to,
        configuration_item=configuration_item,
    )
    incident.save()
    _index(incident)
    workindex_rollup_opened(record_type=RECORD_TYPE, opened_at=incident.opened_at)
    dashboard_category_add(record_type=RECORD_TYPE, opened_at=incident.opened_at, category=incident.category)
    # The CI is recorded only when one is named (the entry of an incident without a CI stays as before).
    created = [
        f for f in (*EDITABLE_FIELDS, "priority", "state") if f != "configuration_item" or configuration_item
    ]
    entry = activity_record(
        actor=actor,
        verb="incident.created",
        record_type=RECORD_TYPE,
        record_id=incident.pk,
        changes={field: [None, history_value(getattr(incident, field))] for field in created},
    )
    _notify_assigned(actor, incident, entry.pk, {"assigned_to", "assignment_group"})
    _sla(incident)
    return incident


@transaction.atomic
def incident_update(*, actor: Actor, incident: Incident, **changes: Any) -> Incident:
    """Change editable fields of an open or resolved incident; priority follows impact and urgency.

    ``changes`` keys are among EDITABLE_FIELDS. A change of assignment group or assignee from a set value
    counts as a reassignment (ServiceNow's ``reassignment_count``). Raises PermissionDenied for non-
    technicians, IncidentNotEditable for closed/canceled incidents, InvalidInput for unknown fields and for
    None on a field that cannot be empty (only caller, assignment group, assignee and configuration item
    can be cleared). A ``configuration_item`` is a cmdb.ConfigurationItem the caller fetched for the actor
    through ``modules.cmdb.selectors`` (the history records its id and "number name (class)").
    """
    _require_technician(actor)
    unknown = set(changes) - set(EDITABLE_FIELDS)
    if unknown:
        raise InvalidInput(
            f"not editable: {', '.join(sorted(unknown))}",
            errors=[{"field": f, "message": "not editable"} for f in sorted(unknown)],
        )
    nulls = sorted(f for f, value in changes.items() if value is None and f not in CLEARABLE_FIELDS)
    if nulls:
        raise InvalidInput(
            f"cannot be empty: {', '.join(nulls)}",
            errors=[{"field": f, "message": "cannot be null"} for f in nulls],
        )
    incident = Incident.objects.select_for_update().get(pk=incident.pk)
    if incident.state in (Incident.State.CLOSED, Incident.State.CANCELED):
        raise IncidentNotEditable(f"{incident.number} is {incident.get_state_display()}")
    diff: dict[str, list[Any]] = {}
    for field, new in changes.items():
        old = getattr(incident, field)
        if old != new:
            diff[field] = [history_value(old), history_value(new)]
            setattr(incident, field, new)
    if "short_description" in diff and not incident.short_description.strip():
        raise InvalidInput(
            "short_description is required", errors=[{"field": "short_description", "message": "required"}]
        )
    if "impact" in diff or "urgency" in diff:
        priority = priority_for(impact=incident.impact, urgency=incident.urgency)
        if priority != incident.priority:
            diff["priority"] = [incident.priority, priority]
            incident.priority = priority
    reassigned = ("assignment_group" in diff and diff["assignment_group"][0] is not None) or (
        "assigned_to" in diff and diff["assigned_to"][0] is not None
    )
    if reassigned:
        incident.reassignment_count += 1
        diff["reassignment_count"] = [incident.reassignment_count - 1, incident.reassignment_count]
    if not diff:
        return incident
    incident.save()
    _index(incident)
    if "category" in diff:
        dashboard_category_move(
            record_type=RECORD_TYPE,
            opened_at=incident.opened_at,
            before=diff["category"][0] or "",
            after=incident.category,
        )
    entry = activity_record(
        actor=actor, verb="incident.updated", record_type=RECORD_TYPE, record_id=incident.pk, changes=diff
    )
    _notify_assigned(actor, incident, entry.pk, set(diff))
    _sla(incident)
    return incident


@dataclass(frozen=True)
class Transition:
    action: str
    sources: tuple[str, ...]
    target: str
    technician_only: bool = True


S = Incident.State
TRANSITIONS = {
    t.action: t
    for t in (
        Transition("start", (S.NEW, S.ON_HOLD), S.IN_PROGRESS),
        Transition("hold", (S.NEW, S.IN_PROGRESS), S.ON_HOLD),
        Transition("resume", (S.ON_HOLD,), S.IN_PROGRESS),
        Transition("resolve", (S.NEW, S.IN_PROGRESS, S.ON_HOLD), S.RESOLVED),
        Transition("close", (S.RESOLVED,), S.CLOSED),
        Transition("reopen", (S.RESOLVED, S.CLOSED), S.IN_PROGRESS, technician_only=False),
        Transition("cancel", (S.NEW, S.IN_PROGRESS, S.ON_HOLD), S.CANCELED),
    )
}


@transaction.atomic
def incident_transition(
    *,
    actor: Actor,
    incident: Incident,
    action: str,
    hold_reason: str = "",
    resolution_code: str = "",
    resolution_notes: str = "",
    comment: str = "",
    now: dt.datetime | None = None,
) -> Incident:
    """Apply a state action (start, hold, resume, resolve, close, reopen, cancel) to an incident.

    - hold needs ``hold_reason`` (an Incident.HoldReason value);
    - resolve needs an active ``resolution_code`` and non-empty ``resolution_notes``;
    - reopen of a Closed incident only within the tenant's ``reopen_window_days`` of ``closed_at``;
      end users may reopen their own resolved incidents (with a comment saying why).
    ``comment`` is added as a public comment. ``now`` (UTC) is for the auto-close sweep and tests.
    Raises InvalidTransition (409) when the action does not apply to the current state, InvalidInput
    (422) for missing details, PermissionDenied (403) for end users outside reopen.
    """
    transition = TRANSITIONS.get(action)
    if transition is None:
        raise InvalidInput(
            f"unknown action {action!r}", errors=[{"field": "action", "message": "unknown action"}]
        )
    if transition.technician_only:
        _require_technician(actor)
    now = now or timezone.now()
    incident = Incident.objects.select_for_update().get(pk=incident.pk)
    if incident.state not in transition.sources:
        raise InvalidTransition(
            f"cannot {action} {incident.number}: it is {incident.get_state_display()}",
            current_state=incident.state,
            allowed_actions=allowed_actions(incident=incident, actor=actor),
        )
    before = {
        f: getattr(incident, f)
        for f in ("state", "hold_reason", "resolution_code", "resolved_at", "closed_at")
    }
    if action == "hold":
        if hold_reason not in Incident.HoldReason.values:
            raise InvalidInput(
                "hold needs a hold_reason",
                errors=[
                    {"field": "hold_reason", "message": f"one of {', '.join(Incident.HoldReason.values)}"}
                ],
            )
        incident.hold_reason = hold_reason
    elif action == "resolve":
        errors = []
        if not ResolutionCode.objects.filter(code=resolution_code, active=True).exists():
            errors.append({"field": "resolution_code", "message": "an active resolution code is required"})
        if not resolution_notes.strip():
            errors.append({"field": "resolution_notes", "message": "required"})
        if errors:
            raise InvalidInput("resolve needs a resolution code and notes", errors=errors)
        incident.resolution_code, incident.resolution_notes = resolution_code, resolution_notes.strip()
        incident.resolved_at, incident.resolved_by = now, actor.person
    elif action == "close":
        incident.closed_at = now
    elif action == "reopen":
        if not actor.is_technician and (
            incident.caller_id != actor.person_id or incident.state != S.RESOLVED
        ):
            raise PermissionDenied("end users may reopen only their own resolved incidents")
        if incident.state == S.CLOSED:
            window = IncidentSettings.objects.get(pk=1).reopen_window_days
            assert incident.closed_at is not None
            if now - incident.closed_at > dt.timedelta(days=window):
                raise InvalidTransition(
                    f"{incident.number} closed more than {window} days ago; open a new incident instead",
                    current_state=incident.state,
                    allowed_actions=[],
                )
        incident.reopen_count += 1
        incident.resolved_at = incident.closed_at = incident.resolved_by = None
        incident.resolution_code = ""
    if action != "hold":
        incident.hold_reason = ""
    incident.state = transition.target
    incident.save()
    _index(incident)
    diff = {
        f: [history_value(old), history_value(getattr(incident, f))]
        for f, old in before.items()
        if getattr(incident, f) != old
    }
    if action == "reopen":
        diff["reopen_count"] = [incident.reopen_count - 1, incident.reopen_count]
    entry = activity_record(
        actor=actor,
        verb=f"incident.{action}",
        record_type=RECORD_TYPE,
        record_id=incident.pk,
        changes=diff,
        at=now,
    )
    _notify_state(actor, incident, entry.pk, before["state"], comment.strip())
    _sla(incident)
    workindex_rollup_record(
        record_type=RECORD_TYPE,
        record_id=incident.pk,
        opened_at=incident.opened_at,
        resolved_before=before["resolved_at"],
        resolved_after=incident.resolved_at,
    )
    if comment.strip():
        comment_add(
            actor=actor,
            record_type=RECORD_TYPE,
            record_id=incident.pk,
            body=comment.strip(),
            is_work_note=False,
        )
    return incident


@transaction.atomic
def incident_problem_set(*, actor: Actor, incident: Incident, problem: models.Model | None) -> Incident:
    """Link an incident to a problem (``problem``, a problems.Problem) or clear the link (None).

    Any incident may be linked, closed ones included (a recurrence is evidence for the problem, as on
    ServiceNow's Problem > Incidents related list). Technicians only (PermissionDenied). Logs
    ``incident.problem_linked`` with ``problem: [old id, new id]``; no entry when nothing changes. The
    problems module calls this; it checks its own rules (open problem, no double link) first.
    """
    _require_technician(actor)
    incident = Incident.objects.select_for_update().get(pk=incident.pk)
    old, new = incident.problem_id, (problem.pk if problem is not None else None)
    if old == new:
        return incident
    incident.problem_id = new
    incident.save(update_fields=["problem", "updated_at"])
    activity_record(
        actor=actor,
        verb="incident.problem_linked",
        record_type=RECORD_TYPE,
        record_id=incident.pk,
        changes={"problem": [str(old) if old else None, str(new) if new else None]},
    )
    return incident


def allowed_actions(*, incident: Incident, actor: Actor) -> list[str]:
    """The actions whose source states include the incident's state and that the actor may take."""
    return [
        t.action
        for t in TRANSITIONS.values()
        if incident.state in t.sources
        and (actor.is_technician or not t.technician_only)
        and (actor.is_technician or (incident.caller_id == actor.person_id and incident.state == S.RESOLVED))
    ]


@transaction.atomic
def incident_comment(*, actor: Actor, incident: Incident, body: str, work_note: bool = False) -> Any:
    """Add a public comment (callers and technicians) or a work note (technicians only).

    A public comment notifies (``record.commented``, after commit): the caller when a technician wrote
    it, the assignee (or, with nobody assigned, the assignment group) when the caller wrote it.
    Raises InvalidInput for an empty body, PermissionDenied for an end user's work note.
    """
    if not body.strip():
        raise InvalidInput("body is required", errors=[{"field": "body", "message": "required"}])
    if work_note:
        _require_technician(actor)
    comment = comment_add(
        actor=actor, record_type=RECORD_TYPE, record_id=incident.pk, body=body.strip(), is_work_note=work_note
    )
    _notify_comment(actor, incident, comment)
    return comment


@transaction.atomic
def incident_settings_set(
    *, actor: Actor, reopen_window_days: int | None = None, autoclose_after_days: int | None = None
) -> IncidentSettings:
    """Change the tenant's incident rules (days, 0-365 each). Admins only; logs ``incident_settings.changed``.

    Raises PermissionDenied for non-admins and InvalidInput naming an out-of-range field; nothing is written.
    """
    if not actor.may(P.CONFIG_MANAGE):
        raise PermissionDenied("only admins may change incident rules")
    changes = {"reopen_window_days": reopen_window_days, "autoclose_after_days": autoclose_after_days}
    bad = [name for name, value in changes.items() if value is not None and not 0 <= value <= 365]
    if bad:
        raise InvalidInput(
            "days must be 0-365", errors=[{"field": name, "message": "0-365 days"} for name in bad]
        )
    rules = IncidentSettings.objects.select_for_update().get(pk=1)
    diff = {
        name: [getattr(rules, name), value]
        for name, value in changes.items()
        if value is not None and value != getattr(rules, name)
    }
    for name, (_, value) in diff.items():
        setattr(rules, name, value)
    if diff:
        rules.save()
        activity_record(
            actor=actor,
            verb="incident_settings.changed",
            record_type="incident_settings",
            record_id=INCIDENT_SETTINGS_ID,
            changes=diff,
        )
    return rules


@transaction.atomic
def priority_matrix_set(*, actor: Actor, cells: list[tuple[int, int, int]]) -> None:
    """Replace matrix cells: each (impact, urgency, priority), all values in 1..3, 1..3, 1..5.

    Existing incidents keep their priority (it is recomputed only when their impact or urgency changes).
    Raises PermissionDenied unless the actor is an admin; InvalidInput naming the bad cell.
    """
    if not actor.may(P.CONFIG_MANAGE):
        raise PermissionDenied("only admins may change the priority matrix")
    for index, (impact, urgency, priority) in enumerate(cells):
        if impact not in (1, 2, 3) or urgency not in (1, 2, 3) or priority not in (1, 2, 3, 4, 5):
            raise InvalidInput(
                f"cell {index} out of range",
                errors=[{"field": f"cells[{index}]", "message": "impact/urgency 1-3, priority 1-5"}],
            )
    for impact, urgency, priority in cells:
        rule, created = PriorityRule.objects.get_or_create(
            impact=impact, urgency=urgency, defaults={"priority": priority}
        )
        if not created and rule.priority != priority:
            activity_record(
                actor=actor,
                verb="priority_matrix.changed",
                record_type="priority_matrix",
                record_id=PRIORITY_MATRIX_ID,
                changes={f"{impact}x{urgency}": [rule.priority, priority]},
            )
            rule.priority = priority
            rule.save(update_fields=["priority"])


def incident_autoclose(*, now: dt.datetime | None = None) -> int:
    """Close Resolved incidents resolved at least ``autoclose_after_days`` ago. Returns how many closed.

    Safe to run twice: a closed incident is no longer Resolved. Each close is its own transaction.
    """
    now = now or timezone.now()
    days = IncidentSettings.objects.get(pk=1).autoclose_after_days
    due = Incident.objects.filter(state=S.RESOLVED, resolved_at__lte=now - dt.timedelta(days=days))
    closed = 0
    actor = Actor.system()
    for incident in due.only("pk").iterator():
        try:
            incident_transition(actor=actor, incident=incident, action="close", comment="", now=now)
            closed += 1
        except (InvalidTransition, NotFound):
            continue  # changed by someone else meanwhile
    return closed


# Notifications (modules.notifications; keys derived from the activity entry or comment, so a retried
# service emits nothing twice). Nobody is told of their own change.


def _notify_assigned(actor: Actor, incident: Incident, entry_id: uuid.UUID, changed: set[str]) -> None:
    """``record.assigned`` to a newly set assignee, or to the members of a newly set assignment group
    when nobody is assigned (ServiceNow's "assigned to me" / "assigned to my group" notifications)."""
    persons = [incident.assigned_to] if "assigned_to" in changed and incident.assigned_to else []
    group = incident.assignment_group if "assignment_group" in changed and not incident.assigned_to else None
    if not persons and group is None:
        return
    notification_emit(
        event="record.assigned",
        record_type=RECORD_TYPE,
        record_id=incident.pk,
        number=incident.number,
        title=incident.short_description,
        persons=persons,
        groups=[group] if group is not None else [],
        key=f"record.assigned:{entry_id}",
        actor=actor,
        context={"assignee": str(persons[0]) if persons else None, "group": str(group) if group else None},
    )


def _notify_state(actor: Actor, incident: Incident, entry_id: uuid.UUID, old: str, comment: str) -> None:
    """``record.state_changed`` to the caller, with the transition's public comment."""
    if incident.caller is None:
        return
    notification_emit(
        event="record.state_changed",
        record_type=RECORD_TYPE,
        record_id=incident.pk,
        number=incident.number,
        title=incident.short_description,
        persons=[incident.caller],
        key=f"record.state_changed:{entry_id}",
        actor=actor,
        context={"state": incident.state, "previous_state": old, "comment": comment, "audience": "portal"},
    )


def _notify_comment(actor: Actor, incident: Incident, comment: Any) -> None:
    """``record.commented``: a technician's public comment to the caller; the caller's to the assignee
    (or the assignment group's members). Work notes notify nobody."""
    if comment.is_work_note:
        return
    incident = Incident.objects.select_related("caller", "assigned_to", "assignment_group").get(
        pk=incident.pk
    )
    persons: list[Person] = []
    groups: list[Group] = []
    audience = "console"
    if incident.caller_id is not None and actor.person_id == incident.caller_id:
        if incident.assigned_to is not None:
            persons = [incident.assigned_to]
        elif incident.assignment_group is not None:
            groups = [incident.assignment_group]
    elif actor.is_technician and incident.caller is not None:
        persons, audience = [incident.caller], "portal"
    if not persons and not groups:
        return
    notification_emit(
        event="record.commented",
        record_type=RECORD_TYPE,
        record_id=incident.pk,
        number=incident.number,
        title=incident.short_description,
        persons=persons,
        groups=groups,
        key=f"record.commented:{comment.pk}",
        actor=actor,
        context={"comment": comment.body, "audience": audience},
    )


class SurveyAlreadyAnswered(Conflict):
    slug = "survey-answered"
    title = "This survey was already answered"


SURVEY_STATES = (Incident.State.RESOLVED, Incident.State.CLOSED)


def incident_survey_answer(
    *, actor: Actor, incident: Incident, score: int, comment: str = ""
) -> SatisfactionResponse:
    """Record the caller's satisfaction with a resolved or closed incident: ``score`` 1-5 (1 very
    dissatisfied .. 5 very satisfied, the CSAT scale of ServiceNow's and Jira Service Management's
    resolution surveys) and an optional comment (at most 2000 characters).

    Only the incident's caller answers (PermissionDenied for anyone else, technicians included: the
    survey is the customer's voice), only while the incident is resolved or closed (InvalidTransition),
    and once per incident (SurveyAlreadyAnswered; the unique constraint on the incident settles a race).
    Adds the score to the tenant's daily rollup (satisfaction_sum / satisfaction_count, record type
    ``incident``) on the tenant's local day of the answer, and records ``incident.survey_answered``. On
    any error nothing is written.
    """
    if actor.person_id is None or incident.caller_id != actor.person_id:
        raise PermissionDenied("only the caller answers the satisfaction survey")
    if incident.state not in SURVEY_STATES:
        raise InvalidTransition(f"{incident.number} is not resolved; the survey opens once it is")
    errors = []
    if not isinstance(score, int) or not 1 <= score <= 5:
        errors.append({"field": "score", "message": "choose a score from 1 to 5"})
    if len(comment) > 2000:
        errors.append({"field": "comment", "message": "at most 2000 characters"})
    if errors:
        raise InvalidInput("; ".join(e["message"] for e in errors), errors=errors)
    assert actor.person is not None
    if SatisfactionResponse.objects.filter(incident=incident).exists():
        raise SurveyAlreadyAnswered(f"the survey of {incident.number} was already answered")
    try:
        with transaction.atomic():
            response = SatisfactionResponse.objects.create(
                incident=incident, person=actor.person, score=score, comment=comment.strip()
            )
            activity_record(
                actor=actor,
                verb="incident.survey_answered",
                record_type=RECORD_TYPE,
                record_id=incident.pk,
                changes={"satisfaction_score": [None, score]},
                at=response.answered_at,
            )
            workindex_rollup_add(
                record_type=RECORD_TYPE,
                day=workindex_local_day(response.answered_at),
                satisfaction_sum=score,
                satisfaction_count=1,
            )
    except IntegrityError as exc:
        raise SurveyAlreadyAnswered(f"the survey of {incident.number} was already answered") from exc
    return response
