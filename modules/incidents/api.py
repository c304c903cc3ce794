"""REST API for incidents: /api/v1/t/{tenant}/incidents. Parse, call one service or selector, return."""

import datetime as dt
import uuid
from typing import Any, Literal

from django.core.exceptions import ValidationError
from django.http import HttpRequest
from ninja import Field, FilterSchema, Query, Router, Schema, Status
from ninja.pagination import CursorPagination, paginate

from controlplane.api_auth import TenantSlug
from controlplane.http import TenantRequest
from controlplane.problems import InvalidInput, NotFound
from modules.cmdb import selectors as cmdb_selectors
from modules.people.models import Group, Person
from modules.records.actor import Actor
from modules.records.schemas import ActivityOut, CommentIn, CommentOut, GroupRef, PersonRef
from modules.records.selectors import activity_list, comment_list

from . import selectors, services

router = Router(tags=["incidents"])

StateName = Literal["new", "in_progress", "on_hold", "resolved", "closed", "canceled"]
Ordering = Literal[
    "-opened_at", "opened_at", "-updated_at", "updated_at", "priority", "-priority", "number", "-number"
]


class IncidentOut(Schema):
    id: uuid.UUID
    number: str
    short_description: str
    description: str
    caller: PersonRef | None
    category: str
    subcategory: str
    contact_type: str
    impact: int
    urgency: int
    priority: int
    state: StateName
    hold_reason: str
    assignment_group: GroupRef | None
    assigned_to: PersonRef | None
    resolution_code: str
    resolution_notes: str
    opened_at: dt.datetime
    resolved_at: dt.datetime | None
    closed_at: dt.datetime | None
    updated_at: dt.datetime
    reassignment_count: int
    reopen_count: int
    configuration_item_id: uuid.UUID | None
    problem_id: uuid.UUID | None
    source_problem_id: str
    source_rfc: str
    source_cmdb_ci: str


class IncidentIn(Schema):
    short_description: str = Field(..., min_length=1, max_length=160)
    description: str = ""
    caller_id: uuid.UUID | None = None
    category: str = Field("", max_length=100)
    subcategory: str = Field("", max_length=100)
    contact_type: Literal["phone", "email", "self_service", "walk_in", "chat", "monitoring", "api"] | None = (
        None
    )
    impact: int = Field(2, ge=1, le=3)
    urgency: int = Field(2, ge=1, le=3)
    assignment_group_id: uuid.UUID | None = None
    assigned_to_id: uuid.UUID | None = None
    configuration_item_id: uuid.UUID | None = Field(None, description="the affected CI (a CMDB id)")


class IncidentPatch(Schema):
    short_description: str | None = Field(None, min_length=1, max_length=160)
    description: str | None = None
    caller_id: uuid.UUID | None = None
    category: str | None = Field(None, max_length=100)
    subcategory: str | None = Field(None, max_length=100)
    contact_type: Literal["phone", "email", "self_service", "walk_in", "chat", "monitoring", "api"] | None = (
        None
    )
    impact: int | None = Field(None, ge=1, le=3)
    urgency: int | None = Field(None, ge=1, le=3)
    assignment_group_id: uuid.UUID | None = None
    assigned_to_id: uuid.UUID | None = None
    configuration_item_id: uuid.UUID | None = Field(None, description="the affected CI; null clears it")


class IncidentActionIn(Schema):
    action: Literal["start", "hold", "resume", "resolve", "close", "reopen", "cancel"]
    hold_reason: Literal[
        "", "awaiting_user_info", "awaiting_problem", "awaiting_vendor", "awaiting_evidence"
    ] = ""
    resolution_code: str = ""
    resolution_notes: str = ""
    comment: str = ""


class IncidentFilters(FilterSchema):
    state: list[StateName] | None = None
    priority: list[int] | None = None
    assigned_to: uuid.UUID | None = None
    assignment_group: uuid.UUID | None = None
    caller: uuid.UUID | None = None
    open_only: bool = False
    q: str = ""
    opened_after: dt.datetime | None = None
    opened_before: dt.datetime | None = None


class PriorityCell(Schema):
    impact: int = Field(..., ge=1, le=3)
    urgency: int = Field(..., ge=1, le=3)
    priority: int = Field(..., ge=1, le=5)


class ResolutionCodeOut(Schema):
    code: str
    label: str


class OrderedCursorPagination(CursorPagination):
    """ninja's cursor pagination with the ordering chosen per request (``ordering`` filter) and the
    UUIDv7 id as tie-breaker."""

    class Input(CursorPagination.Input):
        ordering: Ordering = "-opened_at"

    def paginate_queryset(self, queryset: Any, pagination: Any, request: HttpRequest, **params: Any) -> Any:
        ordering = pagination.ordering
        tie = "-id" if ordering.startswith("-") else "id"
        inner = CursorPagination(
            ordering=(ordering, tie), page_size=self.page_size, max_page_size=self.max_page_size
        )
        try:
            return inner.paginate_queryset(queryset, pagination, request, **params)
        except (ValueError, ValidationError) as exc:  # a cursor whose position does not fit this ordering
            raise InvalidInput(
                "invalid cursor for this ordering",
                errors=[{"field": "cursor", "message": "start again without a cursor"}],
            ) from exc


def _resolve_refs(data: dict[str, Any], *, actor: Actor) -> dict[str, Any]:
    """Turn ``*_id`` references into directory objects and the configuration item (fetched for the actor
    through the CMDB selectors); an unknown id, or a CI the actor cannot see (another tenant's included),
    is a 422 naming the field."""
    out: dict[str, Any] = {}
    for key, value in data.items():
        if key == "configuration_item_id":
            try:
                out["configuration_item"] = (
                    None if value is None else cmdb_selectors.ci_get(actor=actor, ci_id=value)
                )
            except NotFound as exc:
                raise InvalidInput(
                    f"{key}: not found", errors=[{"field": key, "message": "not found"}]
                ) from exc
        elif key in ("caller_id", "assigned_to_id", "assignment_group_id"):
            name = key.removesuffix("_id")
            if value is None:
                out[name] = None
                continue
            model = Group if key == "assignment_group_id" else Person
            obj = model.objects.filter(pk=value).first()
            if obj is None:
                raise InvalidInput(f"{key}: not found", errors=[{"field": key, "message": "not found"}])
            out[name] = obj
        else:
            out[key] = value
    return out


@router.get("/", response=list[IncidentOut], summary="List incidents")
@paginate(OrderedCursorPagination)
def list_incidents(request: TenantRequest, tenant: TenantSlug, filters: Query[IncidentFilters]) -> Any:
    return selectors.incident_list(actor=request.actor, **filters.dict())


@router.post("/", response={201: IncidentOut}, summary="Create an incident")
def create_incident(request: TenantRequest, tenant: TenantSlug, payload: IncidentIn) -> Any:
    return Status(
        201,
        services.incident_create(actor=request.actor, **_resolve_refs(payload.dict(), actor=request.actor)),
    )


@router.get("/{incident_id}", response=IncidentOut, summary="Get an incident")
def get_incident(request: TenantRequest, tenant: TenantSlug, incident_id: uuid.UUID) -> Any:
    return selectors.incident_get(actor=request.actor, incident_id=incident_id)


@router.patch("/{incident_id}", response=IncidentOut, summary="Update an incident's fields")
def update_incident(
    request: TenantRequest, tenant: TenantSlug, incident_id: uuid.UUID, payload: IncidentPatch
) -> Any:
    actor = request.actor
    incident = selectors.incident_get(actor=actor, incident_id=incident_id)
    changes = _resolve_refs(payload.dict(exclude_unset=True), actor=actor)
    return services.incident_update(actor=actor, incident=incident, **changes)


@router.post("/{incident_id}/actions", response=IncidentOut, summary="Change an incident's state")
def act_on_incident(
    request: TenantRequest, tenant: TenantSlug, incident_id: uuid.UUID, payload: IncidentActionIn
) -> Any:
    actor = request.actor
    incident = selectors.incident_get(actor=actor, incident_id=incident_id)
    return services.incident_transition(actor=actor, incident=incident, **payload.dict())


@router.get("/{incident_id}/comments", response=list[CommentOut], summary="Comments and work notes")
def list_comments(request: TenantRequest, tenant: TenantSlug, incident_id: uuid.UUID) -> Any:
    actor = request.actor
    incident = selectors.incident_get(actor=actor, incident_id=incident_id)
    return comment_list(actor=actor, record_id=incident.pk)


@router.post("/{incident_id}/comments", response={201: CommentOut}, summary="Add a comment or work note")
def add_comment(
    request: TenantRequest, tenant: TenantSlug, incident_id: uuid.UUID, payload: CommentIn
) -> Any:
    actor = request.actor
    incident = selectors.incident_get(actor=actor, incident_id=incident_id)
    comment = services.incident_comment(
        actor=actor, incident=incident, body=payload.body, work_note=payload.work_note
    )
    return Status(201, comment)


class KnownErrorMatch(Schema):
    id: uuid.UUID
    number: str
    title: str
    state: Literal["draft", "published", "retired"]
    symptoms: str
    workaround: str
    permanent_fix: str
    problem_id: uuid.UUID | None
    rank: float | None = Field(None, description="full-text relevance; higher is better")
    updated_at: dt.datetime


@router.get(
    "/{incident_id}/known-errors",
    response=list[KnownErrorMatch],
    summary="Known errors matching the incident's short description (technicians; best first, at most 10)",
)
def list_known_errors(request: TenantRequest, tenant: TenantSlug, incident_id: uuid.UUID) -> Any:
    actor = request.actor
    incident = selectors.incident_get(actor=actor, incident_id=incident_id)
    return selectors.incident_known_error_list(actor=actor, incident=incident)


@router.get("/{incident_id}/history", response=list[ActivityOut], summary="Activity history, oldest first")
def get_history(request: TenantRequest, tenant: TenantSlug, incident_id: uuid.UUID) -> Any:
    actor = request.actor
    incident = selectors.incident_get(actor=actor, incident_id=incident_id)
    return activity_list(actor=actor, record_id=incident.pk)


@router.get("/settings/priority-matrix", response=list[PriorityCell], summary="The impact x urgency matrix")
def get_priority_matrix(request: TenantRequest, tenant: TenantSlug) -> Any:
    return selectors.priority_matrix_get(actor=request.actor)


@router.put("/settings/priority-matrix", response=list[PriorityCell], summary="Change matrix cells (admins)")
def put_priority_matrix(request: TenantRequest, tenant: TenantSlug, payload: list[PriorityCell]) -> Any:
    actor = request.actor
    services.priority_matrix_set(actor=actor, cells=[(c.impact, c.urgency, c.priority) for c in payload])
    return selectors.priority_matrix_get(actor=actor)


class IncidentRules(Schema):
    reopen_window_days: int = Field(..., description="a closed incident can be reopened this many days")
    autoclose_after_days: int = Field(..., description="resolved incidents close after this many days")


class IncidentRulesPatch(Schema):
    reopen_window_days: int | None = Field(None, ge=0, le=365)
    autoclose_after_days: int | None = Field(None, ge=0, le=365)


@router.get("/settings/rules", response=IncidentRules, summary="Reopen window and auto-close period")
def get_rules(request: TenantRequest, tenant: TenantSlug) -> Any:
    return selectors.incident_settings_get(actor=request.actor)


@router.patch("/settings/rules", response=IncidentRules, summary="Change incident rules (admins)")
def patch_rules(request: TenantRequest, tenant: TenantSlug, payload: IncidentRulesPatch) -> Any:
    return services.incident_settings_set(actor=request.actor, **payload.dict(exclude_unset=True))


@router.get("/settings/resolution-codes", response=list[ResolutionCodeOut], summary="Active resolution codes")
def list_resolution_codes(request: TenantRequest, tenant: TenantSlug) -> Any:
    return selectors.resolution_code_list(actor=request.actor)
