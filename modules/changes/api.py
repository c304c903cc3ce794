"""REST API for changes and the CAB: /api/v1/t/{tenant}/changes. Parse, call one service or selector.

Fixed paths (templates, cab-members, blackout-windows, settings, risk-questions) come before the
``/{change_id}`` routes.
"""

import datetime as dt
import uuid
from typing import Any, Literal

from django.core.exceptions import ValidationError
from django.http import HttpRequest
from ninja import Field, FilterSchema, Query, Router, Schema, Status
from ninja.pagination import CursorPagination, paginate

from controlplane.api_auth import TenantSlug
from controlplane.http import TenantRequest
from controlplane.problems import InvalidInput
from modules.people.models import Group, Person
from modules.records.schemas import ActivityOut, CommentIn, CommentOut, GroupRef, PersonRef
from modules.records.selectors import activity_list, comment_list

from . import selectors, services

router = Router(tags=["changes"])

ChangeType = Literal["standard", "normal", "emergency"]
StateName = Literal["draft", "assess", "authorise", "scheduled", "implement", "review", "closed", "cancelled"]
RiskName = Literal["low", "moderate", "high", "very_high"]
OutcomeName = Literal["successful", "successful_with_issues", "failed", "rolled_back"]
Ordering = Literal[
    "-created_at",
    "created_at",
    "-planned_start",
    "planned_start",
    "-updated_at",
    "updated_at",
    "number",
    "-number",
]


class ChangeOut(Schema):
    id: uuid.UUID
    number: str
    change_type: ChangeType
    template_id: uuid.UUID | None
    short_description: str
    description: str
    justification: str
    category: str
    requested_by: PersonRef | None
    assignment_group: GroupRef | None
    assigned_to: PersonRef | None
    implementation_plan: str
    backout_plan: str
    test_plan: str
    planned_start: dt.datetime | None
    planned_end: dt.datetime | None
    actual_start: dt.datetime | None
    actual_end: dt.datetime | None
    risk: RiskName
    risk_answers: dict[str, str]
    impact_summary: dict[str, Any]
    state: StateName
    outcome: OutcomeName | Literal[""]
    review_notes: str
    conflicts: list[dict[str, Any]] = Field(
        ..., description="schedule conflicts stored on entering authorise"
    )
    created_at: dt.datetime
    updated_at: dt.datetime


class ChangeIn(Schema):
    change_type: ChangeType
    template_id: uuid.UUID | None = None
    short_description: str = Field("", max_length=160)
    description: str = ""
    justification: str = ""
    category: str = Field("", max_length=100)
    requested_by_id: uuid.UUID | None = None
    assignment_group_id: uuid.UUID | None = None
    assigned_to_id: uuid.UUID | None = None
    implementation_plan: str = ""
    backout_plan: str = ""
    test_plan: str = ""
    planned_start: dt.datetime | None = Field(None, description="ISO 8601 with an offset; stored in UTC")
    planned_end: dt.datetime | None = Field(None, description="ISO 8601 with an offset; stored in UTC")


class ChangePatch(Schema):
    short_description: str | None = Field(None, min_length=1, max_length=160)
    description: str | None = None
    justification: str | None = None
    category: str | None = Field(None, max_length=100)
    requested_by_id: uuid.UUID | None = None
    assignment_group_id: uuid.UUID | None = None
    assigned_to_id: uuid.UUID | None = None
    implementation_plan: str | None = None
    backout_plan: str | None = None
    test_plan: str | None = None
    planned_start: dt.datetime | None = None
    planned_end: dt.datetime | None = None
    outcome: OutcomeName | Literal[""] | None = None
    review_notes: str | None = None


class ChangeActionIn(Schema):
    action: Literal[
        "submit", "request_authorisation", "schedule", "reject", "implement", "complete", "close", "cancel"
    ]
    outcome: OutcomeName | Literal[""] = ""
    review_notes: str = ""
    comment: str = ""


class ChangeFilters(FilterSchema):
    state: list[StateName] | None = None
    change_type: list[ChangeType] | None = None
    open_only: bool = False
    q: str = ""
    starts_after: dt.datetime | None = None
    starts_before: dt.datetime | None = None


class CIRef(Schema):
    id: uuid.UUID
    number: str
    name: str
    ci_class: str


class CIIn(Schema):
    ci_id: uuid.UUID


class RiskIn(Schema):
    answers: dict[str, str] = Field(..., description="risk question key -> answer value")


class RiskAnswerOut(Schema):
    value: str
    label: str
    weight: int


class RiskQuestionOut(Schema):
    key: str
    text: str
    answers: list[RiskAnswerOut]


class ImpactedOut(Schema):
    id: uuid.UUID
    number: str
    name: str
    ci_class: str
    depth: int
    path: list[uuid.UUID] = Field(..., alias="path_ids")
    via: list[str]


class CIImpactOut(Schema):
    ci: CIRef
    impacted: list[ImpactedOut]


class ImpactSummary(Schema):
    cis: int
    impacted_cis: int
    business_services: int


class ImpactOut(Schema):
    summary: ImpactSummary
    cis: list[CIImpactOut]


class CIBrief(Schema):
    id: uuid.UUID
    number: str
    name: str


class ConflictOut(Schema):
    kind: Literal["change", "blackout"]
    change_id: uuid.UUID | None = None
    number: str | None = None
    short_description: str | None = None
    state: str | None = None
    planned_start: dt.datetime | None = None
    planned_end: dt.datetime | None = None
    same_cis: list[CIBrief] = []
    dependent_cis: list[CIBrief] = []
    blackout_id: uuid.UUID | None = None
    name: str | None = None
    start: dt.datetime | None = None
    end: dt.datetime | None = None
    reason: str | None = None


class VoteIn(Schema):
    decision: Literal["approve", "reject", "abstain"]
    comment: str = ""


class VoteOut(Schema):
    member: PersonRef
    decision: str
    comment: str
    at: dt.datetime


class CabOut(Schema):
    board: Literal["none", "cab", "ecab"]
    quorum: int
    approve: int
    reject: int
    abstain: int
    ignored: int = Field(..., description="votes of persons no longer on the board (not counted)")
    outcome: Literal["not_required", "pending", "authorised", "rejected"]
    votes: list[VoteOut]


class TemplateIn(Schema):
    name: str = Field(..., min_length=1, max_length=160)
    description: str = ""
    category: str = Field("", max_length=100)
    implementation_plan: str = ""
    backout_plan: str = ""
    test_plan: str = ""
    active: bool = True


class TemplateOut(Schema):
    id: uuid.UUID
    name: str
    description: str
    category: str
    implementation_plan: str
    backout_plan: str
    test_plan: str
    risk: RiskName
    active: bool


class TemplatePatch(Schema):
    name: str | None = Field(None, min_length=1, max_length=160)
    description: str | None = None
    category: str | None = Field(None, max_length=100)
    implementation_plan: str | None = None
    backout_plan: str | None = None
    test_plan: str | None = None
    active: bool | None = Field(None, description="false retires the template, true restores it")


class CabMemberIn(Schema):
    person_id: uuid.UUID
    emergency: bool = False


class CabMemberOut(Schema):
    id: int
    person: PersonRef
    emergency: bool
    added_at: dt.datetime


class BlackoutIn(Schema):
    name: str = Field(..., min_length=1, max_length=160)
    start: dt.datetime
    end: dt.datetime
    reason: str = ""


class BlackoutOut(Schema):
    id: uuid.UUID
    name: str
    start: dt.datetime
    end: dt.datetime
    reason: str


class ChangeRules(Schema):
    cab_quorum: int = Field(..., description="counted CAB votes needed to decide a normal change")
    ecab_quorum: int = Field(..., description="counted emergency CAB votes needed for an emergency change")


class ChangeRulesPatch(Schema):
    cab_quorum: int | None = Field(None, ge=1, le=50)
    ecab_quorum: int | None = Field(None, ge=1, le=50)


class OrderedCursorPagination(CursorPagination):
    """ninja's cursor pagination with the ordering chosen per request and the UUIDv7 id as tie-breaker."""

    class Input(CursorPagination.Input):
        ordering: Ordering = "-created_at"

    def paginate_queryset(self, queryset: Any, pagination: Any, request: HttpRequest, **params: Any) -> Any:
        ordering = pagination.ordering
        tie = "-id" if ordering.startswith("-") else "id"
        inner = CursorPagination(
            ordering=(ordering, tie), page_size=self.page_size, max_page_size=self.max_page_size
        )
        try:
            return inner.paginate_queryset(queryset, pagination, request, **params)
        except (ValueError, ValidationError) as exc:
            raise InvalidInput(
                "invalid cursor for this ordering",
                errors=[{"field": "cursor", "message": "start again without a cursor"}],
            ) from exc


REFS: dict[str, type[Person] | type[Group]] = {
    "requested_by_id": Person,
    "assigned_to_id": Person,
    "assignment_group_id": Group,
}


def _resolve_refs(data: dict[str, Any]) -> dict[str, Any]:
    """Turn ``*_id`` references into objects; an unknown id is a 422 naming the field."""
    out: dict[str, Any] = {}
    for key, value in data.items():
        if key in REFS:
            name = key.removesuffix("_id")
            if value is None:
                out[name] = None
                continue
            model = REFS[key]
            obj = model._default_manager.filter(pk=value).first()
            if obj is None:
                raise InvalidInput(f"{key}: not found", errors=[{"field": key, "message": "not found"}])
            out[name] = obj
        else:
            out[key] = value
    return out


# Fixed paths first.


@router.get("/templates", response=list[TemplateOut], summary="Standard change templates")
def list_templates(request: TenantRequest, tenant: TenantSlug, active_only: bool = False) -> Any:
    return selectors.template_list(actor=request.actor, active_only=active_only)


@router.post("/templates", response={201: TemplateOut}, summary="Add a standard change template (admins)")
def create_template(request: TenantRequest, tenant: TenantSlug, payload: TemplateIn) -> Any:
    return Status(201, services.template_create(actor=request.actor, **payload.dict()))


@router.patch("/templates/{template_id}", response=TemplateOut, summary="Update a template (admins)")
def update_template(
    request: TenantRequest, tenant: TenantSlug, template_id: uuid.UUID, payload: TemplatePatch
) -> Any:
    actor = request.actor
    template = selectors.template_get(actor=actor, template_id=template_id)
    return services.template_update(actor=actor, template=template, **payload.dict(exclude_unset=True))


@router.get("/cab-members", response=list[CabMemberOut], summary="The CAB (emergency members flagged)")
def list_cab_members(request: TenantRequest, tenant: TenantSlug) -> Any:
    return selectors.cab_member_list(actor=request.actor)


@router.post(
    "/cab-members", response={201: CabMemberOut}, summary="Add a CAB member or set their flag (admins)"
)
def add_cab_member(request: TenantRequest, tenant: TenantSlug, payload: CabMemberIn) -> Any:
    person = Person.objects.filter(pk=payload.person_id).first()
    if person is None:
        raise InvalidInput("person_id: not found", errors=[{"field": "person_id", "message": "not found"}])
    return Status(
        201, services.cab_member_add(actor=request.actor, person=person, emergency=payload.emergency)
    )


@router.delete("/cab-members/{member_id}", response={204: None}, summary="Remove a CAB member (admins)")
def remove_cab_member(request: TenantRequest, tenant: TenantSlug, member_id: int) -> Any:
    actor = request.actor
    services.cab_member_remove(actor=actor, member=selectors.cab_member_get(actor=actor, member_id=member_id))
    return Status(204, None)


@router.get("/blackout-windows", response=list[BlackoutOut], summary="Blackout windows")
def list_blackouts(request: TenantRequest, tenant: TenantSlug) -> Any:
    return selectors.blackout_list(actor=request.actor)


@router.post("/blackout-windows", response={201: BlackoutOut}, summary="Add a blackout window (admins)")
def create_blackout(request: TenantRequest, tenant: TenantSlug, payload: BlackoutIn) -> Any:
    return Status(201, services.blackout_create(actor=request.actor, **payload.dict()))


@router.delete("/blackout-windows/{blackout_id}", response={204: None}, summary="Remove a blackout (admins)")
def delete_blackout(request: TenantRequest, tenant: TenantSlug, blackout_id: uuid.UUID) -> Any:
    actor = request.actor
    services.blackout_delete(
        actor=actor, blackout=selectors.blackout_get(actor=actor, blackout_id=blackout_id)
    )
    return Status(204, None)


@router.get("/settings", response=ChangeRules, summary="CAB quorums")
def get_settings(request: TenantRequest, tenant: TenantSlug) -> Any:
    return selectors.change_settings_get(actor=request.actor)


@router.patch("/settings", response=ChangeRules, summary="Change CAB quorums (admins)")
def patch_settings(request: TenantRequest, tenant: TenantSlug, payload: ChangeRulesPatch) -> Any:
    return services.change_settings_set(actor=request.actor, **payload.dict(exclude_unset=True))


@router.get("/risk-questions", response=list[RiskQuestionOut], summary="The risk questionnaire")
def list_risk_questions(request: TenantRequest, tenant: TenantSlug) -> Any:
    return selectors.risk_question_list(actor=request.actor)


# Changes


@router.get("/", response=list[ChangeOut], summary="List changes")
@paginate(OrderedCursorPagination)
def list_changes(request: TenantRequest, tenant: TenantSlug, filters: Query[ChangeFilters]) -> Any:
    return selectors.change_list(actor=request.actor, **filters.dict())


@router.post("/", response={201: ChangeOut}, summary="Create a change (draft)")
def create_change(request: TenantRequest, tenant: TenantSlug, payload: ChangeIn) -> Any:
    return Status(201, services.change_create(actor=request.actor, **_resolve_refs(payload.dict())))


@router.get("/{change_id}", response=ChangeOut, summary="Get a change")
def get_change(request: TenantRequest, tenant: TenantSlug, change_id: uuid.UUID) -> Any:
    return selectors.change_get(actor=request.actor, change_id=change_id)


@router.patch("/{change_id}", response=ChangeOut, summary="Update a change's fields")
def update_change(
    request: TenantRequest, tenant: TenantSlug, change_id: uuid.UUID, payload: ChangePatch
) -> Any:
    actor = request.actor
    change = selectors.change_get(actor=actor, change_id=change_id)
    changes = _resolve_refs(payload.dict(exclude_unset=True))
    return services.change_update(actor=actor, change=change, **changes)


@router.post("/{change_id}/actions", response=ChangeOut, summary="Change a change's state")
def act_on_change(
    request: TenantRequest, tenant: TenantSlug, change_id: uuid.UUID, payload: ChangeActionIn
) -> Any:
    actor = request.actor
    change = selectors.change_get(actor=actor, change_id=change_id)
    return services.change_transition(actor=actor, change=change, **payload.dict())


@router.get("/{change_id}/cis", response=list[CIRef], summary="Affected configuration items")
def list_cis(request: TenantRequest, tenant: TenantSlug, change_id: uuid.UUID) -> Any:
    actor = request.actor
    return selectors.change_ci_list(
        actor=actor, change=selectors.change_get(actor=actor, change_id=change_id)
    )


@router.post("/{change_id}/cis", response={201: ChangeOut}, summary="Add an affected CI (risk recomputed)")
def add_ci(request: TenantRequest, tenant: TenantSlug, change_id: uuid.UUID, payload: CIIn) -> Any:
    actor = request.actor
    change = selectors.change_get(actor=actor, change_id=change_id)
    return Status(201, services.change_ci_add(actor=actor, change=change, ci_id=payload.ci_id))


@router.delete(
    "/{change_id}/cis/{ci_id}", response=ChangeOut, summary="Remove an affected CI (risk recomputed)"
)
def remove_ci(request: TenantRequest, tenant: TenantSlug, change_id: uuid.UUID, ci_id: uuid.UUID) -> Any:
    actor = request.actor
    change = selectors.change_get(actor=actor, change_id=change_id)
    return services.change_ci_remove(actor=actor, change=change, ci_id=ci_id)


@router.put(
    "/{change_id}/risk", response=ChangeOut, summary="Answer the risk questionnaire (risk recomputed)"
)
def put_risk(request: TenantRequest, tenant: TenantSlug, change_id: uuid.UUID, payload: RiskIn) -> Any:
    actor = request.actor
    change = selectors.change_get(actor=actor, change_id=change_id)
    return services.change_risk_set(actor=actor, change=change, answers=payload.answers)


@router.get("/{change_id}/votes", response=CabOut, summary="CAB votes and where the CAB rule stands")
def list_votes(request: TenantRequest, tenant: TenantSlug, change_id: uuid.UUID) -> Any:
    actor = request.actor
    return selectors.cab_get(actor=actor, change=selectors.change_get(actor=actor, change_id=change_id))


@router.post("/{change_id}/votes", response=CabOut, summary="Cast or change your own CAB vote")
def cast_vote(request: TenantRequest, tenant: TenantSlug, change_id: uuid.UUID, payload: VoteIn) -> Any:
    actor = request.actor
    change = selectors.change_get(actor=actor, change_id=change_id)
    services.change_vote(actor=actor, change=change, decision=payload.decision, comment=payload.comment)
    return selectors.cab_get(actor=actor, change=change)


@router.get("/{change_id}/conflicts", response=list[ConflictOut], summary="Schedule conflicts, computed now")
def list_conflicts(request: TenantRequest, tenant: TenantSlug, change_id: uuid.UUID) -> Any:
    actor = request.actor
    change = selectors.change_get(actor=actor, change_id=change_id)
    return selectors.change_conflict_list(actor=actor, change=change)


@router.get("/{change_id}/impact", response=ImpactOut, summary="Impact of the affected CIs (CMDB)")
def get_impact(request: TenantRequest, tenant: TenantSlug, change_id: uuid.UUID) -> Any:
    actor = request.actor
    change = selectors.change_get(actor=actor, change_id=change_id)
    return selectors.change_impact_get(actor=actor, change=change)


@router.get("/{change_id}/comments", response=list[CommentOut], summary="Comments and work notes")
def list_comments(request: TenantRequest, tenant: TenantSlug, change_id: uuid.UUID) -> Any:
    actor = request.actor
    change = selectors.change_get(actor=actor, change_id=change_id)
    return comment_list(actor=actor, record_id=change.pk)


@router.post("/{change_id}/comments", response={201: CommentOut}, summary="Add a comment or work note")
def add_comment(request: TenantRequest, tenant: TenantSlug, change_id: uuid.UUID, payload: CommentIn) -> Any:
    actor = request.actor
    change = selectors.change_get(actor=actor, change_id=change_id)
    comment = services.change_comment(
        actor=actor, change=change, body=payload.body, work_note=payload.work_note
    )
    return Status(201, comment)


@router.get("/{change_id}/history", response=list[ActivityOut], summary="Activity history, oldest first")
def get_history(request: TenantRequest, tenant: TenantSlug, change_id: uuid.UUID) -> Any:
    actor = request.actor
    change = selectors.change_get(actor=actor, change_id=change_id)
    return activity_list(actor=actor, record_id=change.pk)
