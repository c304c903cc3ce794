"""Problem and known error writes. Keyword-only, one transaction each, an activity entry per change, and
the record's search document rewritten in the same transaction.

Rules follow ITIL 4 problem management as ServiceNow implements it (the model most MSP clients come from):
- states New -> Assessed -> Root cause analysis -> Fix in progress -> Resolved -> Closed, Cancelled from
  any open state, and "Re-analyze" back from Fix in progress or Resolved;
- a problem is assessed only once it is assigned (group or person); it moves to Fix in progress only with
  a documented root cause; it resolves with a resolution code and notes, and can resolve every open
  linked incident in the same transaction;
- known errors (ITIL 4: a problem with a documented root cause and workaround) are drafted, published
  (needing symptoms and a workaround) and retired.
Problem management is provider work: every write here is for technicians only.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from typing import Any

from django.db import transaction
from django.utils import timezone

from controlplane.permissions import P
from controlplane.problems import Conflict, InvalidInput, InvalidTransition, NotFound, PermissionDenied
from controlplane.workindex.services import workindex_rollup_opened, workindex_rollup_record, workindex_upsert
from modules.cmdb import selectors as cmdb_selectors
from modules.incidents import selectors as incident_selectors
from modules.incidents import services as incident_services
from modules.people.models import Group, Person
from modules.records.actor import Actor
from modules.records.models import Comment, SearchDocument
from modules.records.services import (
    activity_record,
    comment_add,
    history_value,
    number_next,
    search_document_set,
)

from . import selectors
from .models import KnownError, Problem, ProblemSettings
from .workindex import problem_work_entry

RECORD_TYPE = "problem"
KNOWN_ERROR_TYPE = selectors.KNOWN_ERROR_TYPE
# The settings are one record per tenant; their history hangs off this fixed id.
PROBLEM_SETTINGS_ID = uuid.uuid5(uuid.NAMESPACE_URL, "msp-itsm:problem-settings")
EDITABLE_FIELDS = (
    "short_description",
    "description",
    "category",
    "subcategory",
    "configuration_item",
    "impact",
    "urgency",
    "assignment_group",
    "assigned_to",
    "rca_method",
    "rca_findings",
    "root_cause",
    "workaround",
    "fix_notes",
)
CLEARABLE_FIELDS = frozenset({"configuration_item", "assignment_group", "assigned_to"})
KNOWN_ERROR_FIELDS = ("title", "symptoms", "root_cause", "workaround", "permanent_fix")
VISIBILITY = SearchDocument.Visibility.TECHNICIANS


class ProblemNotEditable(Conflict):
    slug = "problem-not-editable"
    title = "Closed and cancelled problems cannot be changed"


class IncidentAlreadyLinked(Conflict):
    slug = "incident-already-linked"
    title = "The incident is already linked to a problem"


class KnownErrorNotEditable(Conflict):
    slug = "known-error-not-editable"
    title = "Retired known errors cannot be edited"


def _require_technician(actor: Actor) -> None:
    if not actor.is_technician:
        raise PermissionDenied("only technicians may work problems and known errors")


def _check_rca_method(value: str) -> None:
    if value and value not in Problem.RcaMethod.values:
        raise InvalidInput(
            f"unknown rca_method {value!r}",
            errors=[{"field": "rca_method", "message": f"one of {', '.join(Problem.RcaMethod.values)}"}],
        )


def _problem_index(problem: Problem) -> None:
    workindex_upsert(entry=problem_work_entry(problem))  # the cross-client work index, same transaction
    body = "\n".join(
        part
        for part in (problem.description, problem.rca_findings, problem.root_cause, problem.workaround)
        if part
    )
    search_document_set(
        record_type=RECORD_TYPE,
        record_id=problem.pk,
        number=problem.number,
        title=problem.short_description,
        body=body,
        state=problem.state,
        visibility=VISIBILITY,
    )


def _known_error_index(known_error: KnownError) -> None:
    parts = (known_error.symptoms, known_error.root_cause, known_error.workaround, known_error.permanent_fix)
    search_document_set(
        record_type=KNOWN_ERROR_TYPE,
        record_id=known_error.pk,
        number=known_error.number,
        title=known_error.title,
        body="\n".join(part for part in parts if part),
        state=known_error.state,
        visibility=VISIBILITY,
    )


@transaction.atomic
def problem_create(
    *,
    actor: Actor,
    short_description: str,
    description: str = "",
    category: str = "",
    subcategory: str = "",
    configuration_item: Any | None = None,
    impact: int = 2,
    urgency: int = 2,
    assignment_group: Group | None = None,
    assigned_to: Person | None = None,
    rca_method: str = "",
    rca_findings: str = "",
    root_cause: str = "",
    workaround: str = "",
) -> Problem:
    """Open a problem (state New) with the next ``PRB`` number of this tenant.

    ``configuration_item`` is a cmdb ConfigurationItem (or None). Priority comes from the tenant's
    impact x urgency matrix, the one incidents use (ITIL 4). Technicians only (PermissionDenied).
    Raises InvalidInput for an empty short description, an unknown rca_method or an impact/urgency
    without a matrix cell. Logs ``problem.created``.
    """
    _require_technician(actor)
    if not short_description.strip():
        raise InvalidInput(
            "short_description is required", errors=[{"field": "short_description", "message": "required"}]
        )
    _check_rca_method(rca_method)
    problem = Problem(
        number=number_next(prefix="PRB"),
        short_description=short_description.strip(),
        description=description,
        category=category,
        subcategory=subcategory,
        configuration_item=configuration_item,
        impact=impact,
        urgency=urgency,
        priority=incident_services.priority_for(impact=impact, urgency=urgency),
        assignment_group=assignment_group,
        assigned_to=assigned_to,
        opened_by=actor.person,
        opened_at=timezone.now(),
        rca_method=rca_method,
        rca_findings=rca_findings,
        root_cause=root_cause,
        workaround=workaround,
    )
    problem.save()
    activity_record(
        actor=actor,
        verb="problem.created",
        record_type=RECORD_TYPE,
        record_id=problem.pk,
        changes={
            field: [None, history_value(getattr(problem, field))]
            for field in (*EDITABLE_FIELDS, "priority", "state")
            if getattr(problem, field) not in (None, "")
        },
    )
    _problem_index(problem)
    workindex_rollup_opened(record_type=RECORD_TYPE, opened_at=problem.opened_at)
    return problem


@transaction.atomic
def problem_update(*, actor: Actor, problem: Problem, **changes: Any) -> Problem:
    """Change editable fields (EDITABLE_FIELDS: description, classification, assignment, RCA fields) of an
    open or resolved problem; priority follows impact and urgency.

    Raises PermissionDenied for non-technicians, ProblemNotEditable (409) for closed/cancelled problems,
    InvalidInput for unknown fields, None on a field that cannot be empty, an empty short description or
    an unknown rca_method. Logs ``problem.updated`` with field -> [old, new]; nothing when nothing changed.
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
    _check_rca_method(changes.get("rca_method", ""))
    problem = Problem.objects.select_for_update().get(pk=problem.pk)
    if problem.state in (Problem.State.CLOSED, Problem.State.CANCELLED):
        raise ProblemNotEditable(f"{problem.number} is {problem.get_state_display()}")
    diff: dict[str, list[Any]] = {}
    for name, new in changes.items():
        old = getattr(problem, name)
        if old != new:
            diff[name] = [history_value(old), history_value(new)]
            setattr(problem, name, new)
    if "short_description" in diff and not problem.short_description.strip():
        raise InvalidInput(
            "short_description is required", errors=[{"field": "short_description", "message": "required"}]
        )
    if "impact" in diff or "urgency" in diff:
        priority = incident_services.priority_for(impact=problem.impact, urgency=problem.urgency)
        if priority != problem.priority:
            diff["priority"] = [problem.priority, priority]
            problem.priority = priority
    if not diff:
        return problem
    problem.save()
    activity_record(
        actor=actor, verb="problem.updated", record_type=RECORD_TYPE, record_id=problem.pk, changes=diff
    )
    _problem_index(problem)
    return problem


@dataclass(frozen=True)
class Transition:
    action: str
    sources: tuple[str, ...]
    target: str


S = Problem.State
TRANSITIONS = {
    t.action: t
    for t in (
        Transition("assess", (S.NEW,), S.ASSESSED),
        Transition("start_analysis", (S.ASSESSED,), S.ROOT_CAUSE_ANALYSIS),
        Transition("start_fix", (S.ROOT_CAUSE_ANALYSIS,), S.FIX_IN_PROGRESS),
        Transition("resolve", (S.FIX_IN_PROGRESS,), S.RESOLVED),
        Transition("close", (S.RESOLVED,), S.CLOSED),
        Transition("reanalyze", (S.FIX_IN_PROGRESS, S.RESOLVED), S.ROOT_CAUSE_ANALYSIS),
        Transition("cancel", tuple(Problem.OPEN_STATES), S.CANCELLED),
    )
}


def allowed_actions(*, problem: Problem, actor: Actor) -> list[str]:
    """The actions whose source states include the problem's state (none for non-technicians)."""
    if not actor.is_technician:
        return []
    return [t.action for t in TRANSITIONS.values() if problem.state in t.sources]


@transaction.atomic
def problem_transition(
    *,
    actor: Actor,
    problem: Problem,
    action: str,
    resolution_code: str = "",
    resolution_notes: str = "",
    resolve_incidents: bool = False,
    incident_resolution_code: str = "solved_permanently",
    comment: str = "",
    now: dt.datetime | None = None,
) -> Problem:
    """Apply a state action to a problem: assess, start_analysis, start_fix, resolve, close, reanalyze,
    cancel (see TRANSITIONS).

    - assess needs an assignment group or an assignee (ServiceNow's Assess state);
    - start_fix needs a ``root_cause`` on the problem;
    - resolve needs ``resolution_code`` (a Problem.ResolutionCode) and ``resolution_notes``; with
      ``resolve_incidents`` every open linked incident is resolved in the same transaction through the
      incidents service, with ``incident_resolution_code`` (an active incident resolution code) and notes
      naming the problem; resolved, closed and canceled incidents are left alone;
    - reanalyze clears the resolution.
    ``comment`` is added as a work note. ``now`` is UTC (tests). Raises PermissionDenied (403) for
    non-technicians, InvalidTransition (409) when the action does not apply to the current state,
    InvalidInput (422) naming each missing field. Logs ``problem.<action>``.
    """
    _require_technician(actor)
    transition = TRANSITIONS.get(action)
    if transition is None:
        raise InvalidInput(
            f"unknown action {action!r}", errors=[{"field": "action", "message": "unknown action"}]
        )
    now = now or timezone.now()
    problem = Problem.objects.select_for_update().get(pk=problem.pk)
    if problem.state not in transition.sources:
        raise InvalidTransition(
            f"cannot {action} {problem.number}: it is {problem.get_state_display()}",
            current_state=problem.state,
            allowed_actions=allowed_actions(problem=problem, actor=actor),
        )
    before = {
        f: getattr(problem, f)
        for f in ("state", "resolution_code", "resolution_notes", "resolved_at", "closed_at")
    }
    extra: dict[str, Any] = {}
    if action == "assess" and problem.assignment_group_id is None and problem.assigned_to_id is None:
        raise InvalidInput(
            "assess needs an assignment",
            errors=[
                {"field": "assignment_group", "message": "assign a group or a person first"},
                {"field": "assigned_to", "message": "assign a group or a person first"},
            ],
        )
    if action == "start_fix" and not problem.root_cause.strip():
        raise InvalidInput(
            "a fix needs a documented root cause",
            errors=[{"field": "root_cause", "message": "required before the fix"}],
        )
    if action == "resolve":
        errors = []
        if resolution_code not in Problem.ResolutionCode.values:
            errors.append(
                {
                    "field": "resolution_code",
                    "message": f"one of {', '.join(Problem.ResolutionCode.values)}",
                }
            )
        if not resolution_notes.strip():
            errors.append({"field": "resolution_notes", "message": "required"})
        if errors:
            raise InvalidInput("resolve needs a resolution code and notes", errors=errors)
        problem.resolution_code, problem.resolution_notes = resolution_code, resolution_notes.strip()
        problem.resolved_at = now
        if resolve_incidents:
            extra["resolved_incidents"] = _resolve_linked_incidents(
                actor=actor, problem=problem, code=incident_resolution_code, now=now
            )
    elif action == "close":
        problem.closed_at = now
    elif action == "reanalyze":
        problem.resolution_code, problem.resolution_notes, problem.resolved_at = "", "", None
    problem.state = transition.target
    problem.save()
    diff: dict[str, Any] = {
        f: [history_value(old), history_value(getattr(problem, f))]
        for f, old in before.items()
        if getattr(problem, f) != old
    }
    diff.update(extra)
    activity_record(
        actor=actor,
        verb=f"problem.{action}",
        record_type=RECORD_TYPE,
        record_id=problem.pk,
        changes=diff,
        at=now,
    )
    workindex_rollup_record(
        record_type=RECORD_TYPE,
        record_id=problem.pk,
        opened_at=problem.opened_at,
        resolved_before=before["resolved_at"],
        resolved_after=problem.resolved_at,
    )
    if comment.strip():
        comment_add(
            actor=actor,
            record_type=RECORD_TYPE,
            record_id=problem.pk,
            body=comment.strip(),
            is_work_note=True,
        )
    _problem_index(problem)
    return problem


def _resolve_linked_incidents(*, actor: Actor, problem: Problem, code: str, now: dt.datetime) -> list[str]:
    """Resolve the open incidents linked to ``problem`` through the incidents service; their numbers."""
    notes = f"Resolved with problem {problem.number}: {problem.resolution_notes}"
    numbers = []
    for incident in selectors.problem_incident_list(actor=actor, problem=problem, open_only=True):
        try:
            incident_services.incident_transition(
                actor=actor,
                incident=incident,
                action="resolve",
                resolution_code=code,
                resolution_notes=notes,
                now=now,
            )
        except InvalidInput as exc:
            # Name the field as the problem's action knows it.
            raise InvalidInput(
                f"cannot resolve {incident.number}: {exc.detail}",
                errors=[
                    {"field": "incident_resolution_code", "message": "an active incident resolution code"}
                ],
            ) from exc
        numbers.append(incident.number)
    return numbers


def problem_comment(*, actor: Actor, problem: Problem, body: str, work_note: bool = True) -> Comment:
    """Add a work note (default) or a comment to a problem. Technicians only. Raises InvalidInput for an
    empty body."""
    _require_technician(actor)
    if not body.strip():
        raise InvalidInput("body is required", errors=[{"field": "body", "message": "required"}])
    return comment_add(
        actor=actor, record_type=RECORD_TYPE, record_id=problem.pk, body=body.strip(), is_work_note=work_note
    )


def _require_changeable(problem: Problem) -> None:
    if problem.state in (Problem.State.CLOSED, Problem.State.CANCELLED):
        raise ProblemNotEditable(f"{problem.number} is {problem.get_state_display()}")


@transaction.atomic
def problem_incident_link(*, actor: Actor, problem: Problem, incident: Any) -> Any:
    """Link an incident (an incidents.Incident the actor may see) to the problem, through the incidents
    service ``incident_problem_set``. Any incident state may be linked (recurrences are evidence).

    Raises PermissionDenied for non-technicians, ProblemNotEditable (409) for a closed or cancelled
    problem, IncidentAlreadyLinked (409) when the incident already points at this or another problem
    (unlink it first). Logs ``problem.incident_linked`` on the problem and ``incident.problem_linked`` on
    the incident. Returns the incident.
    """
    _require_technician(actor)
    problem = Problem.objects.select_for_update().get(pk=problem.pk)
    _require_changeable(problem)
    if incident.problem_id is not None:
        where = "this problem" if incident.problem_id == problem.pk else "another problem"
        raise IncidentAlreadyLinked(f"{incident.number} is already linked to {where}")
    incident = incident_services.incident_problem_set(actor=actor, incident=incident, problem=problem)
    activity_record(
        actor=actor,
        verb="problem.incident_linked",
        record_type=RECORD_TYPE,
        record_id=problem.pk,
        changes={"incident": [None, {"id": str(incident.pk), "number": incident.number}]},
    )
    return incident


@transaction.atomic
def problem_incident_unlink(*, actor: Actor, problem: Problem, incident: Any) -> None:
    """Remove the link between an incident and the problem (through ``incident_problem_set``).

    Raises PermissionDenied for non-technicians, ProblemNotEditable (409) for a closed or cancelled
    problem, NotFound when the incident is not linked to this problem. Logs ``problem.incident_unlinked``.
    """
    _require_technician(actor)
    problem = Problem.objects.select_for_update().get(pk=problem.pk)
    _require_changeable(problem)
    if incident.problem_id != problem.pk:
        raise NotFound("the incident is not linked to this problem")
    incident_services.incident_problem_set(actor=actor, incident=incident, problem=None)
    activity_record(
        actor=actor,
        verb="problem.incident_unlinked",
        record_type=RECORD_TYPE,
        record_id=problem.pk,
        changes={"incident": [{"id": str(incident.pk), "number": incident.number}, None]},
    )


@transaction.atomic
def known_error_create(
    *,
    actor: Actor,
    problem: Problem | None = None,
    title: str = "",
    symptoms: str = "",
    root_cause: str = "",
    workaround: str = "",
    permanent_fix: str = "",
) -> KnownError:
    """Record a known error (state Draft, number ``KE…``), standalone or from a problem.

    From a problem, empty fields are copied from it (ServiceNow's "Create known error"): title from its
    short description, symptoms from its description, root cause and workaround from its RCA fields,
    permanent fix from its fix notes. Technicians only. Raises InvalidInput when no title results.
    Logs ``known_error.created`` (and ``problem.known_error_created`` on the problem).
    """
    _require_technician(actor)
    if problem is not None:
        problem = Problem.objects.get(pk=problem.pk)  # copy what is stored now, not a stale instance
        title = title.strip() or problem.short_description
        symptoms = symptoms or problem.description
        root_cause = root_cause or problem.root_cause
        workaround = workaround or problem.workaround
        permanent_fix = permanent_fix or problem.fix_notes
    if not title.strip():
        raise InvalidInput("title is required", errors=[{"field": "title", "message": "required"}])
    known_error = KnownError.objects.create(
        number=number_next(prefix="KE"),
        problem=problem,
        title=title.strip(),
        symptoms=symptoms,
        root_cause=root_cause,
        workaround=workaround,
        permanent_fix=permanent_fix,
        created_by=actor.person,
    )
    activity_record(
        actor=actor,
        verb="known_error.created",
        record_type=KNOWN_ERROR_TYPE,
        record_id=known_error.pk,
        changes={
            f: [None, getattr(known_error, f)]
            for f in (*KNOWN_ERROR_FIELDS, "state")
            if getattr(known_error, f)
        }
        | ({"problem": [None, problem.number]} if problem is not None else {}),
    )
    if problem is not None:
        activity_record(
            actor=actor,
            verb="problem.known_error_created",
            record_type=RECORD_TYPE,
            record_id=problem.pk,
            changes={"known_error": [None, {"id": str(known_error.pk), "number": known_error.number}]},
        )
    _known_error_index(known_error)
    return known_error


@transaction.atomic
def known_error_update(*, actor: Actor, known_error: KnownError, **changes: Any) -> KnownError:
    """Change a draft or published known error's text (KNOWN_ERROR_FIELDS).

    Raises PermissionDenied for non-technicians, KnownErrorNotEditable (409) for a retired one,
    InvalidInput for unknown fields, None values or an empty title. Logs ``known_error.updated``.
    """
    _require_technician(actor)
    bad = sorted(f for f, value in changes.items() if f not in KNOWN_ERROR_FIELDS or value is None)
    if bad:
        raise InvalidInput(
            f"not editable: {', '.join(bad)}", errors=[{"field": f, "message": "not editable"} for f in bad]
        )
    if "title" in changes and not changes["title"].strip():
        raise InvalidInput("title is required", errors=[{"field": "title", "message": "required"}])
    known_error = KnownError.objects.select_for_update().get(pk=known_error.pk)
    if known_error.state == KnownError.State.RETIRED:
        raise KnownErrorNotEditable(f"{known_error.number} is retired")
    diff = {f: [getattr(known_error, f), v] for f, v in changes.items() if getattr(known_error, f) != v}
    if not diff:
        return known_error
    for name, (_, value) in diff.items():
        setattr(known_error, name, value)
    known_error.save()
    activity_record(
        actor=actor,
        verb="known_error.updated",
        record_type=KNOWN_ERROR_TYPE,
        record_id=known_error.pk,
        changes=diff,
    )
    _known_error_index(known_error)
    return known_error


KNOWN_ERROR_TRANSITIONS = {
    "publish": ((KnownError.State.DRAFT, KnownError.State.RETIRED), KnownError.State.PUBLISHED),
    "retire": ((KnownError.State.DRAFT, KnownError.State.PUBLISHED), KnownError.State.RETIRED),
}


def known_error_allowed_actions(*, known_error: KnownError, actor: Actor) -> list[str]:
    if not actor.is_technician:
        return []
    return [a for a, (sources, _) in KNOWN_ERROR_TRANSITIONS.items() if known_error.state in sources]


@transaction.atomic
def _known_error_move(
    *, actor: Actor, known_error: KnownError, action: str, now: dt.datetime | None
) -> KnownError:
    _require_technician(actor)
    sources, target = KNOWN_ERROR_TRANSITIONS[action]
    known_error = KnownError.objects.select_for_update().get(pk=known_error.pk)
    if known_error.state not in sources:
        raise InvalidTransition(
            f"cannot {action} {known_error.number}: it is {known_error.get_state_display()}",
            current_state=known_error.state,
            allowed_actions=known_error_allowed_actions(known_error=known_error, actor=actor),
        )
    if action == "publish":
        missing = [f for f in ("symptoms", "workaround") if not getattr(known_error, f).strip()]
        if missing:
            raise InvalidInput(
                "a published known error needs symptoms and a workaround",
                errors=[{"field": f, "message": "required to publish"} for f in missing],
            )
    now = now or timezone.now()
    old = known_error.state
    known_error.state = target
    if action == "publish":
        known_error.published_at = now
    else:
        known_error.retired_at = now
    known_error.save()
    activity_record(
        actor=actor,
        verb=f"known_error.{action}",
        record_type=KNOWN_ERROR_TYPE,
        record_id=known_error.pk,
        changes={"state": [old, target]},
        at=now,
    )
    _known_error_index(known_error)
    return known_error


def known_error_publish(
    *, actor: Actor, known_error: KnownError, now: dt.datetime | None = None
) -> KnownError:
    """Publish a draft (or republish a retired) known error so the service desk uses its workaround.
    Needs symptoms and a workaround (InvalidInput naming each missing one). Technicians only; raises
    InvalidTransition (409) for a published one. Logs ``known_error.publish``."""
    return _known_error_move(actor=actor, known_error=known_error, action="publish", now=now)


def known_error_retire(
    *, actor: Actor, known_error: KnownError, now: dt.datetime | None = None
) -> KnownError:
    """Retire a known error (the permanent fix is in place, or it no longer applies). Technicians only;
    raises InvalidTransition (409) for a retired one. Logs ``known_error.retire``."""
    return _known_error_move(actor=actor, known_error=known_error, action="retire", now=now)


def known_error_transition(*, actor: Actor, known_error: KnownError, action: str) -> KnownError:
    """``publish`` or ``retire`` (API and console entry). Raises InvalidInput for another action."""
    if action not in KNOWN_ERROR_TRANSITIONS:
        raise InvalidInput(
            f"unknown action {action!r}", errors=[{"field": "action", "message": "publish or retire"}]
        )
    return _known_error_move(actor=actor, known_error=known_error, action=action, now=None)


@transaction.atomic
def problem_settings_set(
    *, actor: Actor, candidate_min_incidents: int | None = None, candidate_window_days: int | None = None
) -> ProblemSettings:
    """Change the candidate thresholds: ``candidate_min_incidents`` (2-1000 incidents) and
    ``candidate_window_days`` (1-365 days). Admins only (PermissionDenied); InvalidInput naming an
    out-of-range field; nothing is written on refusal. Logs ``problem_settings.changed``."""
    if not actor.may(P.PROCESS_MANAGE):
        raise PermissionDenied("only admins may change problem rules")
    ranges = {"candidate_min_incidents": (2, 1000), "candidate_window_days": (1, 365)}
    changes = {
        "candidate_min_incidents": candidate_min_incidents,
        "candidate_window_days": candidate_window_days,
    }
    bad = [n for n, v in changes.items() if v is not None and not ranges[n][0] <= v <= ranges[n][1]]
    if bad:
        raise InvalidInput(
            "out of range",
            errors=[{"field": n, "message": f"{ranges[n][0]}-{ranges[n][1]}"} for n in bad],
        )
    rules = ProblemSettings.objects.select_for_update().get(pk=1)
    diff = {n: [getattr(rules, n), v] for n, v in changes.items() if v is not None and v != getattr(rules, n)}
    if diff:
        for name, (_, value) in diff.items():
            setattr(rules, name, value)
        rules.save()
        activity_record(
            actor=actor,
            verb="problem_settings.changed",
            record_type="problem_settings",
            record_id=PROBLEM_SETTINGS_ID,
            changes=diff,
        )
    return rules


@transaction.atomic
def problem_candidate_accept(
    *,
    actor: Actor,
    key: str,
    short_description: str = "",
    impact: int = 2,
    urgency: int = 2,
    assignment_group: Group | None = None,
    assigned_to: Person | None = None,
    min_incidents: int | None = None,
    within_days: int | None = None,
    now: dt.datetime | None = None,
) -> Problem:
    """Accept a problem candidate (``key`` from problem_candidate_list, under the same thresholds): open
    one problem with the group's CI or category/subcategory and link every incident of the group.

    The short description defaults to the candidate's title. Technicians only (PermissionDenied); NotFound
    when the candidate no longer qualifies. Logs ``problem.created`` (with ``candidate``) and one
    ``problem.incident_linked`` per incident.
    """
    _require_technician(actor)
    candidate = selectors.problem_candidate_get(
        actor=actor, key=key, min_incidents=min_incidents, within_days=within_days, now=now
    )
    ci = None
    if candidate.configuration_item_id is not None:
        ci = cmdb_selectors.ci_get(actor=actor, ci_id=candidate.configuration_item_id)
    problem = problem_create(
        actor=actor,
        short_description=short_description.strip() or candidate.title,
        description="Proposed from recurring incidents: "
        + ", ".join(i.number for i in reversed(candidate.incidents)),
        category=candidate.category,
        subcategory=candidate.subcategory,
        configuration_item=ci,
        impact=impact,
        urgency=urgency,
        assignment_group=assignment_group,
        assigned_to=assigned_to,
    )
    activity_record(
        actor=actor,
        verb="problem.candidate_accepted",
        record_type=RECORD_TYPE,
        record_id=problem.pk,
        changes={"candidate": [None, key], "incident_count": [None, candidate.count]},
    )
    for member in reversed(candidate.incidents):
        incident = incident_selectors.incident_get(actor=actor, incident_id=member.id)
        problem_incident_link(actor=actor, problem=problem, incident=incident)
    return problem


@transaction.atomic
def problem_import_reference(*, actor: Actor, external_ref: str, title: str) -> tuple[Problem, bool]:
    """The problem an import refers to by ``external_ref`` (e.g. ``servicenow:Problem ID 2``), opened
    (state New, for triage) with ``title`` as short description when it does not exist yet. Returns
    (problem, created). Safe to run again: the external reference is unique."""
    existing = Problem.objects.filter(external_ref=external_ref).first()
    if existing is not None:
        return existing, False
    problem = problem_create(actor=actor, short_description=title)
    problem.external_ref = external_ref
    problem.save(update_fields=["external_ref"])
    return problem, True
