"""Change writes. Keyword-only, one transaction each, an activity entry for every change.

Who may do what (ARCHITECTURE.md roles): technicians create and work changes; persons on the CAB vote
(``change_vote``); admins (provider owner/admin, client admin) keep the CAB roster, the standard change
templates, the blackout windows and the quorums. Everyone else is refused and nothing is written.

The state machine (ServiceNow's change model, ITIL 4 change enablement), by type; ``cancel`` applies
in every state before implement:

- standard (from an active template, pre-authorised): draft -submit-> scheduled -implement-> implement
  -complete-> review -close-> closed.
- normal: draft -submit-> assess -request_authorisation-> authorise -schedule-> scheduled -implement->
  implement -complete-> review -close-> closed. ``schedule`` needs the CAB rule met (selectors.
  cab_tally_get); ``reject`` (authorise -> draft) needs the rule to have rejected the change.
- emergency: draft -submit-> authorise -implement-> implement (fast track: scheduled may be skipped;
  ``schedule`` is also allowed) -complete-> review -close-> closed, authorised by the emergency CAB.

Rejection returns the change to draft, ServiceNow's behaviour (a rejected change goes back to New for
the requester to rework and resubmit); that round's votes are cleared (the history keeps them).
Submitting a normal change needs implementation, back-out and test plans and a planned window; an
emergency change needs implementation and back-out plans and a window (its test plan may follow); a
standard change needs a window (its plans come from the template). ``complete`` needs an outcome;
``close`` needs the post-implementation review notes (mandatory for every type, as ITIL asks of
emergency changes in particular).
"""

from __future__ import annotations

import datetime as dt
import re
import uuid
from dataclasses import dataclass
from typing import Any

from django.db import transaction
from django.utils import timezone

from controlplane.permissions import P
from controlplane.problems import Conflict, InvalidInput, InvalidTransition, NotFound, PermissionDenied
from controlplane.workindex.services import workindex_upsert
from modules.cmdb.selectors import ci_get
from modules.people.models import Group, Person
from modules.records.actor import Actor
from modules.records.services import (
    activity_record,
    comment_add,
    history_value,
    number_advance_past,
    number_next,
    search_document_set,
)

from .models import (
    BlackoutWindow,
    CabMember,
    CabVote,
    Change,
    ChangeCI,
    ChangeSettings,
    Risk,
    RiskQuestion,
    StandardChangeTemplate,
)
from .selectors import (
    CabTally,
    cab_tally_get,
    change_conflict_list,
    change_impact_get,
    may_see_changes,
    template_get,
)
from .workindex import change_work_entry

RECORD_TYPE = "change"
# The CAB roster, templates' list, blackout calendar and quorums are one record each per tenant; their
# history hangs off these fixed ids.
CAB_ID = uuid.uuid5(uuid.NAMESPACE_URL, "msp-itsm:cab")
CHANGE_SETTINGS_ID = uuid.uuid5(uuid.NAMESPACE_URL, "msp-itsm:change-settings")

PLANNING_FIELDS = (
    "short_description",
    "description",
    "justification",
    "category",
    "requested_by",
    "implementation_plan",
    "backout_plan",
    "test_plan",
    "planned_start",
    "planned_end",
)
ASSIGNMENT_FIELDS = ("assignment_group", "assigned_to")
REVIEW_FIELDS = ("outcome", "review_notes")
EDITABLE_FIELDS = (*PLANNING_FIELDS, *ASSIGNMENT_FIELDS, *REVIEW_FIELDS)
TEMPLATE_FIELDS = ("implementation_plan", "backout_plan", "test_plan")
CLEARABLE_FIELDS = frozenset(
    {"requested_by", "assignment_group", "assigned_to", "planned_start", "planned_end"}
)
S = Change.State
PLANNING_STATES = (S.DRAFT, S.ASSESS)
REVIEW_STATES = (S.IMPLEMENT, S.REVIEW)

# Risk: questionnaire score (sum of the chosen answers' weights; an unanswered question counts its
# highest weight, so an unassessed change is never low risk) plus CMDB impact points:
#   impacted CIs (distinct, beyond the affected ones): 0 -> 0, 1-5 -> 1, 6-20 -> 2, more -> 3;
#   a business service among the affected or impacted CIs -> +3.
# Total score -> risk: 0-3 low, 4-7 moderate, 8-11 high, 12 and more very high.
IMPACT_POINTS = ((0, 0), (5, 1), (20, 2))  # (up to this many impacted CIs, points); above: 3
BUSINESS_SERVICE_POINTS = 3
RISK_BANDS = (
    (3, Risk.LOW),
    (7, Risk.MODERATE),
    (11, Risk.HIGH),
)  # (up to this score, risk); above: very high


class ChangeNotEditable(Conflict):
    slug = "change-not-editable"
    title = "These fields cannot be changed in this state"


class CabRuleNotMet(Conflict):
    slug = "cab-rule-not-met"
    title = "The CAB rule is not met"


class AlreadyExists(Conflict):
    slug = "already-exists"
    title = "This already exists"


def _require_technician(actor: Actor) -> None:
    if not actor.is_technician:
        raise PermissionDenied("only technicians may do this")


def _require_admin(actor: Actor) -> None:
    if not actor.may(P.PROCESS_MANAGE):
        raise PermissionDenied("only admins may do this")


def _check_window(start: dt.datetime | None, end: dt.datetime | None) -> None:
    errors = [
        {"field": name, "message": "needs a time zone (stored in UTC)"}
        for name, value in (("planned_start", start), ("planned_end", end))
        if value is not None and timezone.is_naive(value)
    ]
    if not errors and start is not None and end is not None and end <= start:
        errors.append({"field": "planned_end", "message": "must be after planned_start"})
    if errors:
        raise InvalidInput("invalid planned window", errors=errors)


def _index(change: Change) -> None:
    """Keep the change's search document current (technicians only find changes) and its row of the
    cross-client work index (controlplane.workindex), in the caller's transaction."""
    workindex_upsert(entry=change_work_entry(change))
    body = "\n".join(
        part
        for part in (
            change.description,
            change.justification,
            change.implementation_plan,
            change.backout_plan,
            change.test_plan,
        )
        if part
    )
    search_document_set(
        record_type=RECORD_TYPE,
        record_id=change.pk,
        number=change.number,
        title=change.short_description,
        body=body,
        state=change.state,
    )


def risk_for(
    *, answers: dict[str, str], questions: list[RiskQuestion], impact_summary: dict[str, Any]
) -> tuple[str, dict[str, int]]:
    """The risk level and its score parts from questionnaire ``answers`` (question key -> answer value)
    and the CMDB ``impact_summary`` (``impacted_cis``, ``business_services``). Pure; see the table above
    (RISK_BANDS, IMPACT_POINTS). Returns ``(risk, {"questionnaire", "impact", "total"})``."""
    questionnaire = 0
    for question in questions:
        weights = {a["value"]: int(a["weight"]) for a in question.answers}
        chosen = answers.get(question.key)
        questionnaire += weights[chosen] if chosen in weights else max(weights.values(), default=0)
    impacted = int(impact_summary.get("impacted_cis", 0))
    impact = next((points for limit, points in IMPACT_POINTS if impacted <= limit), 3)
    if impact_summary.get("business_services", 0):
        impact += BUSINESS_SERVICE_POINTS
    total = questionnaire + impact
    risk = next((level for limit, level in RISK_BANDS if total <= limit), Risk.VERY_HIGH)
    return str(risk), {"questionnaire": questionnaire, "impact": impact, "total": total}


def _assess(actor: Actor, change: Change) -> dict[str, list[Any]]:
    """Recompute impact summary and risk in place; return the diff for the activity entry."""
    before = {"risk": change.risk, "impact_summary": change.impact_summary}
    summary = dict(change_impact_get(actor=actor, change=change)["summary"])
    if change.change_type == Change.Type.STANDARD:
        change.risk = Risk.LOW  # pre-approved: the template's risk
    else:
        questions = list(RiskQuestion.objects.filter(active=True))
        change.risk, score = risk_for(
            answers=change.risk_answers, questions=questions, impact_summary=summary
        )
        summary["score"] = score
    change.impact_summary = summary
    return {
        field: [old, getattr(change, field)] for field, old in before.items() if getattr(change, field) != old
    }


@transaction.atomic
def change_create(
    *,
    actor: Actor,
    change_type: str,
    short_description: str = "",
    template_id: uuid.UUID | None = None,
    description: str = "",
    justification: str = "",
    category: str = "",
    requested_by: Person | None = None,
    assignment_group: Group | None = None,
    assigned_to: Person | None = None,
    implementation_plan: str = "",
    backout_plan: str = "",
    test_plan: str = "",
    planned_start: dt.datetime | None = None,
    planned_end: dt.datetime | None = None,
    number: str | None = None,
) -> Change:
    """Open a change in draft with the next ``CHG`` number (or ``number``, an imported change's own
    ``CHG…`` number, which moves the sequence past it). Technicians only.

    A standard change needs an active template (``template_id``): its name (unless a short description is given),
    description, category and plans are copied, and its risk is low. Normal and emergency changes take no
    template; their risk starts from the questionnaire with nothing answered (very high until assessed).
    ``planned_start``/``planned_end`` are aware datetimes (stored UTC). Raises PermissionDenied for
    non-technicians, InvalidInput naming the field (change_type, template_id, short_description,
    planned_start, planned_end).
    """
    _require_technician(actor)
    if change_type not in Change.Type.values:
        raise InvalidInput(
            "unknown change type",
            errors=[{"field": "change_type", "message": f"one of {', '.join(Change.Type.values)}"}],
        )
    template = None
    if template_id is not None:
        try:
            template = template_get(actor=actor, template_id=template_id)
        except NotFound as exc:
            raise InvalidInput(
                "no such template", errors=[{"field": "template_id", "message": "not found"}]
            ) from exc
    if change_type == Change.Type.STANDARD:
        if template is None or not template.active:
            raise InvalidInput(
                "a standard change needs an active template",
                errors=[
                    {"field": "template_id", "message": "an active standard change template is required"}
                ],
            )
        short_description = short_description.strip() or template.name
        description = description or template.description
        category = category or template.category
        implementation_plan = template.implementation_plan
        backout_plan = template.backout_plan
        test_plan = template.test_plan
    elif template is not None:
        raise InvalidInput(
            "only standard changes use a template",
            errors=[{"field": "template_id", "message": "only for standard changes"}],
        )
    if not short_description.strip():
        raise InvalidInput(
            "short_description is required", errors=[{"field": "short_description", "message": "required"}]
        )
    _check_window(planned_start, planned_end)
    if number is not None:
        number_advance_past(prefix="CHG", value=int(number.removeprefix("CHG")))
    change = Change(
        number=number or number_next(prefix="CHG"),
        change_type=change_type,
        template=template,
        short_description=short_description.strip(),
        description=description,
        justification=justification,
        category=category,
        requested_by=requested_by or actor.person,
        assignment_group=assignment_group,
        assigned_to=assigned_to,
        implementation_plan=implementation_plan,
        backout_plan=backout_plan,
        test_plan=test_plan,
        planned_start=planned_start,
        planned_end=planned_end,
    )
    _assess(actor, change)
    change.save()
    fields = ("change_type", "template", *PLANNING_FIELDS, *ASSIGNMENT_FIELDS, "risk", "state")
    activity_record(
        actor=actor,
        verb="change.created",
        record_type=RECORD_TYPE,
        record_id=change.pk,
        changes={field: [None, history_value(getattr(change, field))] for field in fields},
    )
    _index(change)
    return change


@transaction.atomic
def change_update(*, actor: Actor, change: Change, **changes: Any) -> Change:
    """Change editable fields. Technicians only.

    Planning fields (texts, plans, requester, window) change only in draft and assess, assignment in any
    open state, outcome and review notes in implement and review. A standard change's plans are its
    template's. Raises PermissionDenied, InvalidInput (unknown field, empty required field, bad window,
    template plans), ChangeNotEditable (409) naming the fields the state does not allow.
    """
    _require_technician(actor)
    unknown = sorted(set(changes) - set(EDITABLE_FIELDS))
    if unknown:
        raise InvalidInput(
            f"not editable: {', '.join(unknown)}",
            errors=[{"field": f, "message": "not editable"} for f in unknown],
        )
    nulls = sorted(f for f, value in changes.items() if value is None and f not in CLEARABLE_FIELDS)
    if nulls:
        raise InvalidInput(
            f"cannot be empty: {', '.join(nulls)}",
            errors=[{"field": f, "message": "cannot be null"} for f in nulls],
        )
    change = Change.objects.select_for_update().get(pk=change.pk)
    if "outcome" in changes and changes["outcome"] not in ("", *Change.Outcome.values):
        raise InvalidInput(
            "unknown outcome",
            errors=[{"field": "outcome", "message": f"one of {', '.join(Change.Outcome.values)}"}],
        )
    if change.change_type == Change.Type.STANDARD:
        fixed = sorted(f for f in TEMPLATE_FIELDS if f in changes and changes[f] != getattr(change, f))
        if fixed:
            raise InvalidInput(
                "a standard change's plans are its template's",
                errors=[{"field": f, "message": "set by the standard change template"} for f in fixed],
            )
    refused = sorted(
        f
        for f in changes
        if not change.is_open
        or (f in PLANNING_FIELDS and change.state not in PLANNING_STATES)
        or (f in REVIEW_FIELDS and change.state not in REVIEW_STATES)
    )
    if refused:
        raise ChangeNotEditable(
            f"{change.number} is {change.get_state_display()}: cannot change {', '.join(refused)}",
            fields=refused,
            current_state=change.state,
        )
    diff: dict[str, list[Any]] = {}
    for field, new in changes.items():
        old = getattr(change, field)
        if old != new:
            diff[field] = [history_value(old), history_value(new)]
            setattr(change, field, new)
    if "short_description" in diff and not change.short_description.strip():
        raise InvalidInput(
            "short_description is required", errors=[{"field": "short_description", "message": "required"}]
        )
    _check_window(change.planned_start, change.planned_end)
    if not diff:
        return change
    change.save()
    activity_record(
        actor=actor, verb="change.updated", record_type=RECORD_TYPE, record_id=change.pk, changes=diff
    )
    _index(change)
    return change


@dataclass(frozen=True)
class Transition:
    action: str
    sources: tuple[str, ...]
    target: str


T = Change.Type
_CANCEL_FROM = (S.DRAFT, S.ASSESS, S.AUTHORISE, S.SCHEDULED)
_COMMON = (
    Transition("implement", (S.SCHEDULED,), S.IMPLEMENT),
    Transition("complete", (S.IMPLEMENT,), S.REVIEW),
    Transition("close", (S.REVIEW,), S.CLOSED),
    Transition("cancel", _CANCEL_FROM, S.CANCELLED),
)
TRANSITIONS: dict[str, dict[str, Transition]] = {
    T.STANDARD: {t.action: t for t in (Transition("submit", (S.DRAFT,), S.SCHEDULED), *_COMMON)},
    T.NORMAL: {
        t.action: t
        for t in (
            Transition("submit", (S.DRAFT,), S.ASSESS),
            Transition("request_authorisation", (S.ASSESS,), S.AUTHORISE),
            Transition("schedule", (S.AUTHORISE,), S.SCHEDULED),
            Transition("reject", (S.AUTHORISE,), S.DRAFT),
            *_COMMON,
        )
    },
    T.EMERGENCY: {
        t.action: t
        for t in (
            Transition("submit", (S.DRAFT,), S.AUTHORISE),
            Transition("schedule", (S.AUTHORISE,), S.SCHEDULED),
            Transition("reject", (S.AUTHORISE,), S.DRAFT),
            Transition("implement", (S.AUTHORISE, S.SCHEDULED), S.IMPLEMENT),
            *_COMMON[1:],
        )
    },
}
ACTIONS = (
    "submit",
    "request_authorisation",
    "schedule",
    "reject",
    "implement",
    "complete",
    "close",
    "cancel",
)
REQUIRED_TO_SUBMIT: dict[str, tuple[str, ...]] = {
    T.STANDARD: ("planned_start", "planned_end"),
    T.NORMAL: ("implementation_plan", "backout_plan", "test_plan", "planned_start", "planned_end"),
    T.EMERGENCY: ("implementation_plan", "backout_plan", "planned_start", "planned_end"),
}


def _require_fields(change: Change, action: str) -> None:
    values = {f: getattr(change, f) for f in REQUIRED_TO_SUBMIT[change.change_type]}
    missing = [f for f, v in values.items() if v is None or (isinstance(v, str) and not v.strip())]
    if missing:
        raise InvalidInput(
            f"{action} needs {', '.join(missing)}",
            errors=[{"field": f, "message": "required"} for f in missing],
        )


def _record_conflicts(actor: Actor, change: Change, at: dt.datetime) -> None:
    """Log the schedule conflicts stored on entering authorise or on submitting a standard change (just
    after the transition's entry)."""
    activity_record(
        actor=actor,
        verb="change.conflicts_computed",
        record_type=RECORD_TYPE,
        record_id=change.pk,
        at=at + dt.timedelta(microseconds=1),  # listed right after the transition that computed them
        changes={
            "conflicts": [
                c["number"] if c["kind"] == "change" else f"blackout: {c['name']}" for c in change.conflicts
            ]
        },
    )


@transaction.atomic
def change_transition(
    *,
    actor: Actor,
    change: Change,
    action: str,
    outcome: str = "",
    review_notes: str = "",
    comment: str = "",
    now: dt.datetime | None = None,
) -> Change:
    """Apply a state action to a change (see the module docstring for the three state machines).

    ``outcome`` (a Change.Outcome value) goes with ``complete``; ``review_notes`` with ``close`` (or set
    beforehand by PATCH); ``comment`` is added as a public comment. ``now`` (UTC) is for tests. Entering
    authorise, and submitting a standard change (draft -> scheduled, no CAB), store the schedule
    conflicts (``conflicts``) with a ``change.conflicts_computed`` entry (flagged, not refused);
    ``implement`` sets ``actual_start``, ``complete`` ``actual_end``; ``reject`` clears the round's votes.
    Raises PermissionDenied (403) for non-technicians, InvalidInput (422) for an unknown action or missing
    fields (named), InvalidTransition (409) when the action does not apply to this type and state,
    CabRuleNotMet (409) for schedule/implement/reject before the CAB rule allows it.
    """
    _require_technician(actor)
    if action not in ACTIONS:
        raise InvalidInput(
            f"unknown action {action!r}", errors=[{"field": "action", "message": "unknown action"}]
        )
    now = now or timezone.now()
    change = Change.objects.select_for_update().get(pk=change.pk)
    transition = TRANSITIONS[change.change_type].get(action)
    if transition is None or change.state not in transition.sources:
        raise InvalidTransition(
            f"cannot {action} {change.get_change_type_display().lower()} change {change.number}:"
            f" it is {change.get_state_display()}",
            current_state=change.state,
            allowed_actions=allowed_actions(change=change, actor=actor),
        )
    before = {
        f: getattr(change, f) for f in ("state", "outcome", "review_notes", "actual_start", "actual_end")
    }
    extra: dict[str, Any] = {}
    tally = cab_tally_get(change=change)
    if action in ("submit", "request_authorisation"):
        _require_fields(change, action)
        if change.change_type == T.STANDARD:
            if change.template is None or not change.template.active:
                raise InvalidTransition(
                    f"{change.number}: its template is no longer active", current_state=change.state
                )
            extra["approval"] = [None, f"pre-approved standard change (template {change.template.name})"]
    elif (action == "schedule" or (action == "implement" and change.state == S.AUTHORISE)) and (
        tally.outcome != "authorised"
    ):
        raise CabRuleNotMet(
            f"{change.number} is not authorised by the {tally.board.upper()}: {tally.outcome}",
            tally=_tally_json(tally),
        )
    elif action == "reject":
        if tally.outcome != "rejected":
            raise CabRuleNotMet(
                f"{change.number} is not rejected by the {tally.board.upper()}: {tally.outcome}",
                tally=_tally_json(tally),
            )
    elif action == "implement":
        change.actual_start = now
    elif action == "complete":
        if outcome not in Change.Outcome.values:
            raise InvalidInput(
                "complete needs an outcome",
                errors=[{"field": "outcome", "message": f"one of {', '.join(Change.Outcome.values)}"}],
            )
        change.outcome, change.actual_end = outcome, now
    elif action == "close":
        notes = review_notes.strip() or change.review_notes.strip()
        if not notes:
            raise InvalidInput(
                "close needs the post-implementation review notes",
                errors=[{"field": "review_notes", "message": "required"}],
            )
        change.review_notes = notes
    if action in ("schedule", "implement", "reject") and change.state == S.AUTHORISE:
        extra["cab"] = [None, _tally_json(tally)]
    if action == "reject":
        CabVote.objects.filter(change=change).delete()
    change.state = transition.target
    # The CAB sees the conflicts before voting; a standard change has no CAB, so its conflicts are
    # stored when it is submitted (pre-approved straight to scheduled) for the implementer to see.
    conflicts_due = change.state == S.AUTHORISE or (change.change_type == T.STANDARD and action == "submit")
    if conflicts_due:
        change.conflicts = change_conflict_list(actor=actor, change=change)
    change.save()
    diff = {
        f: [history_value(old), history_value(getattr(change, f))]
        for f, old in before.items()
        if getattr(change, f) != old
    }
    activity_record(
        actor=actor,
        verb=f"change.{action}",
        record_type=RECORD_TYPE,
        record_id=change.pk,
        changes={**diff, **extra},
        at=now,
    )
    if conflicts_due:
        _record_conflicts(actor, change, now)
    _index(change)
    if comment.strip():
        comment_add(
            actor=actor,
            record_type=RECORD_TYPE,
            record_id=change.pk,
            body=comment.strip(),
            is_work_note=False,
        )
    return change


def _tally_json(tally: CabTally) -> dict[str, Any]:
    return {
        "board": tally.board,
        "quorum": tally.quorum,
        "approve": tally.approve,
        "reject": tally.reject,
        "abstain": tally.abstain,
        "outcome": tally.outcome,
    }


def allowed_actions(*, change: Change, actor: Actor) -> list[str]:
    """The actions of this change's type whose source states include its state (technicians only).
    The CAB rule is not checked here: schedule/reject may still answer 409 until the votes allow them."""
    if not actor.is_technician:
        return []
    return [t.action for t in TRANSITIONS[change.change_type].values() if change.state in t.sources]


def _editable_cis(change: Change) -> None:
    if change.state not in PLANNING_STATES:
        raise ChangeNotEditable(
            f"{change.number} is {change.get_state_display()}: affected CIs change only in draft or assess",
            fields=["cis"],
            current_state=change.state,
        )


@transaction.atomic
def change_ci_add(*, actor: Actor, change: Change, ci_id: uuid.UUID) -> Change:
    """Add an affected CI (draft or assess only) and recompute impact and risk. Technicians only.

    Raises InvalidInput naming ``ci_id`` for an unknown CI, AlreadyExists (409) for a CI already on the
    change, ChangeNotEditable (409) after assess.
    """
    _require_technician(actor)
    try:
        ci = ci_get(actor=actor, ci_id=ci_id)
    except NotFound as exc:
        raise InvalidInput(
            "no such configuration item", errors=[{"field": "ci_id", "message": "not found"}]
        ) from exc
    change = Change.objects.select_for_update().get(pk=change.pk)
    _editable_cis(change)
    if ChangeCI.objects.filter(change=change, configuration_item_id=ci.pk).exists():
        raise AlreadyExists(f"{ci.number} is already on {change.number}")
    ChangeCI.objects.create(change=change, configuration_item_id=ci.pk)
    diff = _assess(actor, change)
    change.save()
    activity_record(
        actor=actor,
        verb="change.ci_added",
        record_type=RECORD_TYPE,
        record_id=change.pk,
        changes={"ci": [None, {"id": str(ci.pk), "number": ci.number, "name": ci.name}], **diff},
    )
    return change


@transaction.atomic
def change_ci_remove(*, actor: Actor, change: Change, ci_id: uuid.UUID) -> Change:
    """Remove an affected CI (draft or assess only) and recompute impact and risk. Technicians only.
    Raises NotFound when the CI is not on the change, ChangeNotEditable (409) after assess."""
    _require_technician(actor)
    change = Change.objects.select_for_update().get(pk=change.pk)
    link = (
        ChangeCI.objects.filter(change=change, configuration_item_id=ci_id)
        .values_list("pk", "configuration_item__number", "configuration_item__name")
        .first()
    )
    if link is None:
        raise NotFound("this CI is not on the change")
    _editable_cis(change)
    ChangeCI.objects.filter(pk=link[0]).delete()
    diff = _assess(actor, change)
    change.save()
    activity_record(
        actor=actor,
        verb="change.ci_removed",
        record_type=RECORD_TYPE,
        record_id=change.pk,
        changes={"ci": [{"id": str(ci_id), "number": link[1], "name": link[2]}, None], **diff},
    )
    return change


@transaction.atomic
def change_risk_set(*, actor: Actor, change: Change, answers: dict[str, str]) -> Change:
    """Answer the risk questionnaire (question key -> answer value; merged into earlier answers) and
    recompute the risk (``risk_for``). Draft or assess only; technicians only. Standard changes carry
    their template's low risk (409). Raises InvalidInput naming ``answers.<key>`` for an unknown question
    or answer, ChangeNotEditable (409) after assess or for a standard change."""
    _require_technician(actor)
    questions = {q.key: q for q in RiskQuestion.objects.filter(active=True)}
    errors = []
    for key, value in answers.items():
        if key not in questions:
            errors.append({"field": f"answers.{key}", "message": "unknown question"})
        elif value not in {a["value"] for a in questions[key].answers}:
            values = ", ".join(a["value"] for a in questions[key].answers)
            errors.append({"field": f"answers.{key}", "message": f"one of {values}"})
    if errors:
        raise InvalidInput("invalid risk answers", errors=errors)
    change = Change.objects.select_for_update().get(pk=change.pk)
    if change.change_type == T.STANDARD or change.state not in PLANNING_STATES:
        raise ChangeNotEditable(
            f"{change.number}: the risk assessment changes only for normal and emergency changes in draft"
            " or assess",
            fields=["answers"],
            current_state=change.state,
        )
    old_answers = dict(change.risk_answers)
    change.risk_answers = {**old_answers, **answers}
    diff = _assess(actor, change)
    if change.risk_answers != old_answers:
        diff["risk_answers"] = [old_answers, change.risk_answers]
    if not diff:
        return change
    change.save()
    activity_record(
        actor=actor, verb="change.risk_assessed", record_type=RECORD_TYPE, record_id=change.pk, changes=diff
    )
    return change


@transaction.atomic
def change_vote(*, actor: Actor, change: Change, decision: str, comment: str = "") -> CabVote:
    """Cast or change the actor's own CAB vote (approve, reject, abstain) on a change in authorise.

    Only a current CAB member may vote (an emergency CAB member for an emergency change), and only as
    themselves; a member changes their vote by voting again while the change is in authorise.
    Logs ``change.vote_cast`` or ``change.vote_changed`` on the change. Raises PermissionDenied (403) for
    anyone else (nothing written), InvalidInput for an unknown decision, InvalidTransition (409) outside
    authorise.
    """
    if decision not in CabVote.Decision.values:
        raise InvalidInput(
            "unknown decision",
            errors=[{"field": "decision", "message": f"one of {', '.join(CabVote.Decision.values)}"}],
        )
    if not may_see_changes(actor) or actor.person is None:
        raise PermissionDenied("only CAB members may vote")
    emergency = change.change_type == T.EMERGENCY
    members = CabMember.objects.filter(person=actor.person)
    if emergency:
        members = members.filter(emergency=True)
    if not members.exists():
        raise PermissionDenied(
            "only emergency CAB members may vote on emergency changes"
            if emergency
            else "only CAB members may vote"
        )
    change = Change.objects.select_for_update().get(pk=change.pk)
    if change.state != S.AUTHORISE:
        raise InvalidTransition(
            f"{change.number} is {change.get_state_display()}: votes are taken in authorise only",
            current_state=change.state,
        )
    vote = CabVote.objects.filter(change=change, member=actor.person).first()
    old = vote.decision if vote else None
    if vote is None:
        vote = CabVote(change=change, member=actor.person)
    vote.decision, vote.comment, vote.at = decision, comment.strip(), timezone.now()
    vote.save()
    activity_record(
        actor=actor,
        verb="change.vote_changed" if old else "change.vote_cast",
        record_type=RECORD_TYPE,
        record_id=change.pk,
        changes={"vote": [old, decision], "member": history_value(actor.person), "comment": vote.comment},
    )
    return vote


def change_comment(*, actor: Actor, change: Change, body: str, work_note: bool = False) -> Any:
    """Add a public comment (technicians and CAB members) or a work note (technicians only).
    Raises InvalidInput for an empty body, PermissionDenied otherwise."""
    if not body.strip():
        raise InvalidInput("body is required", errors=[{"field": "body", "message": "required"}])
    if work_note:
        _require_technician(actor)
    if not may_see_changes(actor):
        raise PermissionDenied("only technicians and CAB members may comment on changes")
    return comment_add(
        actor=actor, record_type=RECORD_TYPE, record_id=change.pk, body=body.strip(), is_work_note=work_note
    )


@transaction.atomic
def template_create(
    *,
    actor: Actor,
    name: str,
    description: str = "",
    category: str = "",
    implementation_plan: str = "",
    backout_plan: str = "",
    test_plan: str = "",
    active: bool = True,
) -> StandardChangeTemplate:
    """Add a standard change template (a pre-approved recipe; risk low). Admins only: approving a
    template is the change authority's act (ITIL 4). Needs a unique name and an implementation and a
    back-out plan. Raises PermissionDenied, InvalidInput naming the field, AlreadyExists (409)."""
    _require_admin(actor)
    missing = [
        f
        for f, v in (
            ("name", name),
            ("implementation_plan", implementation_plan),
            ("backout_plan", backout_plan),
        )
        if not v.strip()
    ]
    if missing:
        raise InvalidInput(
            f"required: {', '.join(missing)}", errors=[{"field": f, "message": "required"} for f in missing]
        )
    if StandardChangeTemplate.objects.filter(name=name.strip()).exists():
        raise AlreadyExists(f"a template named {name.strip()!r} exists")
    template = StandardChangeTemplate.objects.create(
        name=name.strip(),
        description=description,
        category=category,
        implementation_plan=implementation_plan,
        backout_plan=backout_plan,
        test_plan=test_plan,
        active=active,
    )
    activity_record(
        actor=actor,
        verb="change_template.created",
        record_type="change_template",
        record_id=template.pk,
        changes={"name": [None, template.name], "active": [None, active]},
    )
    return template


TEMPLATE_EDITABLE = (
    "name",
    "description",
    "category",
    "implementation_plan",
    "backout_plan",
    "test_plan",
    "active",
)


@transaction.atomic
def template_update(
    *, actor: Actor, template: StandardChangeTemplate, **changes: Any
) -> StandardChangeTemplate:
    """Change a standard change template's fields (keys among TEMPLATE_EDITABLE); ``active=False``
    retires it (no new standard changes from it, and its draft changes can no longer be submitted),
    ``active=True`` restores it. Changes already made from it keep their copied plans. Admins only, as
    for template_create (ITIL 4: the change authority approves the recipe). Logs
    ``change_template.updated`` with the changed fields. Raises PermissionDenied, InvalidInput naming an
    unknown field or an emptied name/implementation_plan/backout_plan, AlreadyExists (409, naming
    ``name``) for another template's name; nothing is written on refusal."""
    _require_admin(actor)
    unknown = sorted(set(changes) - set(TEMPLATE_EDITABLE))
    if unknown:
        raise InvalidInput(
            f"not editable: {', '.join(unknown)}",
            errors=[{"field": f, "message": "not editable"} for f in unknown],
        )
    nulls = sorted(f for f, v in changes.items() if v is None)
    if nulls:
        raise InvalidInput(
            f"cannot be empty: {', '.join(nulls)}",
            errors=[{"field": f, "message": "cannot be null"} for f in nulls],
        )
    if "name" in changes:
        changes["name"] = str(changes["name"]).strip()
    missing = [
        f
        for f in ("name", "implementation_plan", "backout_plan")
        if f in changes and not str(changes[f]).strip()
    ]
    if missing:
        raise InvalidInput(
            f"required: {', '.join(missing)}", errors=[{"field": f, "message": "required"} for f in missing]
        )
    template = StandardChangeTemplate.objects.select_for_update().get(pk=template.pk)
    if (
        "name" in changes
        and StandardChangeTemplate.objects.filter(name=changes["name"]).exclude(pk=template.pk).exists()
    ):
        raise AlreadyExists(
            f"a template named {changes['name']!r} exists",
            errors=[{"field": "name", "message": "another template has this name"}],
        )
    diff: dict[str, list[Any]] = {}
    for field, new in changes.items():
        old = getattr(template, field)
        if old != new:
            diff[field] = [old, new]
            setattr(template, field, new)
    if diff:
        template.save()
        activity_record(
            actor=actor,
            verb="change_template.updated",
            record_type="change_template",
            record_id=template.pk,
            changes=diff,
        )
    return template


@transaction.atomic
def cab_member_add(*, actor: Actor, person: Person, emergency: bool = False) -> CabMember:
    """Put a person on the CAB (``emergency``: also on the emergency CAB), or change their emergency
    flag if already a member. Admins only. Logs ``cab.member_added`` / ``cab.member_changed``."""
    _require_admin(actor)
    member = CabMember.objects.filter(person=person).first()
    if member is not None and member.emergency == emergency:
        return member
    verb = "cab.member_changed" if member else "cab.member_added"
    old = member.emergency if member else None
    if member is None:
        member = CabMember(person=person)
    member.emergency = emergency
    member.save()
    activity_record(
        actor=actor,
        verb=verb,
        record_type="cab",
        record_id=CAB_ID,
        changes={"person": history_value(person), "emergency": [old, emergency]},
    )
    return member


@transaction.atomic
def cab_member_remove(*, actor: Actor, member: CabMember) -> None:
    """Take a person off the CAB; their votes stop counting (selectors.cab_tally_get). Admins only."""
    _require_admin(actor)
    activity_record(
        actor=actor,
        verb="cab.member_removed",
        record_type="cab",
        record_id=CAB_ID,
        changes={"person": history_value(member.person), "emergency": [member.emergency, None]},
    )
    member.delete()


@transaction.atomic
def blackout_create(
    *, actor: Actor, name: str, start: dt.datetime, end: dt.datetime, reason: str = ""
) -> BlackoutWindow:
    """Add a blackout window [start, end) (aware datetimes, stored UTC). Admins only. Changes whose
    window overlaps it are flagged (selectors.change_conflict_list). Raises InvalidInput naming the field."""
    _require_admin(actor)
    errors = []
    if not name.strip():
        errors.append({"field": "name", "message": "required"})
    errors += [
        {"field": f, "message": "needs a time zone (stored in UTC)"}
        for f, v in (("start", start), ("end", end))
        if timezone.is_naive(v)
    ]
    if not errors and end <= start:
        errors.append({"field": "end", "message": "must be after start"})
    if errors:
        raise InvalidInput("invalid blackout window", errors=errors)
    blackout = BlackoutWindow.objects.create(name=name.strip(), start=start, end=end, reason=reason)
    activity_record(
        actor=actor,
        verb="blackout.created",
        record_type="blackout_window",
        record_id=blackout.pk,
        changes={
            "name": [None, blackout.name],
            "start": [None, start.isoformat()],
            "end": [None, end.isoformat()],
        },
    )
    return blackout


@transaction.atomic
def blackout_delete(*, actor: Actor, blackout: BlackoutWindow) -> None:
    """Remove a blackout window. Admins only."""
    _require_admin(actor)
    activity_record(
        actor=actor,
        verb="blackout.deleted",
        record_type="blackout_window",
        record_id=blackout.pk,
        changes={"name": [blackout.name, None]},
    )
    blackout.delete()


@transaction.atomic
def change_settings_set(
    *, actor: Actor, cab_quorum: int | None = None, ecab_quorum: int | None = None
) -> ChangeSettings:
    """Change the quorums (1-50 counted votes each). Admins only; logs ``change_settings.changed``.
    Raises PermissionDenied, InvalidInput naming the field; nothing is written on refusal."""
    _require_admin(actor)
    values = {"cab_quorum": cab_quorum, "ecab_quorum": ecab_quorum}
    bad = [f for f, v in values.items() if v is not None and not 1 <= v <= 50]
    if bad:
        raise InvalidInput("quorum must be 1-50", errors=[{"field": f, "message": "1-50 votes"} for f in bad])
    rules = ChangeSettings.objects.select_for_update().get(pk=1)
    diff = {f: [getattr(rules, f), v] for f, v in values.items() if v is not None and v != getattr(rules, f)}
    for f, (_, v) in diff.items():
        setattr(rules, f, v)
    if diff:
        rules.save()
        activity_record(
            actor=actor,
            verb="change_settings.changed",
            record_type="change_settings",
            record_id=CHANGE_SETTINGS_ID,
            changes=diff,
        )
    return rules


CHANGE_NUMBER = re.compile(r"^CHG\d{1,12}$")


@transaction.atomic
def change_import_reference(*, actor: Actor, number: str, title: str, system: str) -> tuple[Change, bool]:
    """The change an import refers to by its ``CHG…`` number in ``system`` (e.g. ServiceNow's ``rfc``),
    keyed ``<system>:<number>``, opened as a draft normal change with ``title`` when it does not exist
    yet. It keeps that number unless a change of this tenant already has it (then it gets the next one):
    a native CHG0000005 is never mistaken for an imported one. Returns (change, created). Raises
    InvalidInput for a malformed number. Safe to run again: the external reference is unique."""
    if not CHANGE_NUMBER.match(number):
        raise InvalidInput(
            f"not a change number: {number!r}", errors=[{"field": "rfc", "message": "CHG and digits"}]
        )
    external_ref = f"{system}:{number}"
    existing = Change.objects.filter(external_ref=external_ref).first()
    if existing is not None:
        return existing, False
    free = not Change.objects.filter(number=number).exists()
    change = change_create(
        actor=actor, change_type="normal", short_description=title, number=number if free else None
    )
    change.external_ref = external_ref
    change.save(update_fields=["external_ref"])
    return change, True
