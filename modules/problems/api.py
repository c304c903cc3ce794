"""REST API for problems and known errors: /api/v1/t/{tenant}/problems. Parse, call one service or
selector, return. Fixed paths (known-errors, candidates, settings) come before ``/{problem_id}``."""

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
from modules.incidents import selectors as incident_selectors
from modules.people.models import Group, Person
from modules.records.schemas import ActivityOut, CommentOut, GroupRef, PersonRef
from modules.records.selectors import activity_list, comment_list

from . import selectors, services

router = Router(tags=["problems"])

StateName = Literal[
    "new", "assessed", "root_cause_analysis", "fix_in_progress", "resolved", "closed", "cancelled"
]
RcaMethod = Literal["", "five_whys", "fishbone", "kepner_tregoe", "fault_tree", "other"]
KnownErrorState = Literal["draft", "published", "retired"]


class CIRef(Schema):
    id: uuid.UUID
    number: str
    name: str


class ProblemOut(Schema):
    id: uuid.UUID
    number: str
    short_description: str
    description: str
    category: str
    subcategory: str
    configuration_item: CIRef | None
    impact: int
    urgency: int
    priority: int
    state: StateName
    assignment_group: GroupRef | None
    assigned_to: PersonRef | None
    opened_by: PersonRef | None
    opened_at: dt.datetime
    rca_method: RcaMethod
    rca_findings: str
    root_cause: str
    workaround: str
    fix_notes: str
    resolution_code: str
    resolution_notes: str
    resolved_at: dt.datetime | None
    closed_at: dt.datetime | None
    updated_at: dt.datetime


class ProblemIn(Schema):
    short_description: str = Field(..., min_length=1, max_length=160)
    description: str = ""
    category: str = Field("", max_length=100)
    subcategory: str = Field("", max_length=100)
    configuration_item_id: uuid.UUID | None = None
    impact: int = Field(2, ge=1, le=3)
    urgency: int = Field(2, ge=1, le=3)
    assignment_group_id: uuid.UUID | None = None
    assigned_to_id: uuid.UUID | None = None
    rca_method: RcaMethod = ""
    rca_findings: str = ""
    root_cause: str = ""
    workaround: str = ""


class ProblemPatch(Schema):
    short_description: str | None = Field(None, min_length=1, max_length=160)
    description: str | None = None
    category: str | None = Field(None, max_length=100)
    subcategory: str | None = Field(None, max_length=100)
    configuration_item_id: uuid.UUID | None = None
    impact: int | None = Field(None, ge=1, le=3)
    urgency: int | None = Field(None, ge=1, le=3)
    assignment_group_id: uuid.UUID | None = None
    assigned_to_id: uuid.UUID | None = None
    rca_method: RcaMethod | None = None
    rca_findings: str | None = None
    root_cause: str | None = None
    workaround: str | None = None
    fix_notes: str | None = None


class ProblemActionIn(Schema):
    action: Literal["assess", "start_analysis", "start_fix", "resolve", "close", "reanalyze", "cancel"]
    resolution_code: str = ""
    resolution_notes: str = ""
    resolve_incidents: bool = Field(False, description="also resolve every open linked incident")
    incident_resolution_code: str = Field("solved_permanently", description="for the linked incidents")
    comment: str = Field("", description="added as a work note")


class ProblemFilters(FilterSchema):
    state: list[StateName] | None = None
    assigned_to: uuid.UUID | None = None
    assignment_group: uuid.UUID | None = None
    open_only: bool = False
    q: str = ""


class LinkedIncidentOut(Schema):
    id: uuid.UUID
    number: str
    short_description: str
    state: str
    priority: int
    opened_at: dt.datetime


class IncidentLinkIn(Schema):
    incident_id: uuid.UUID


class ProblemCommentIn(Schema):
    """Problem notes are internal unless said otherwise."""

    body: str = Field(..., min_length=1)
    work_note: bool = True


class ProblemRef(Schema):
    id: uuid.UUID
    number: str


class KnownErrorOut(Schema):
    id: uuid.UUID
    number: str
    problem: ProblemRef | None
    title: str
    symptoms: str
    root_cause: str
    workaround: str
    permanent_fix: str
    state: KnownErrorState
    published_at: dt.datetime | None
    retired_at: dt.datetime | None
    created_at: dt.datetime
    updated_at: dt.datetime


class KnownErrorIn(Schema):
    problem_id: uuid.UUID | None = Field(None, description="copy empty fields from this problem")
    title: str = Field("", max_length=200)
    symptoms: str = ""
    root_cause: str = ""
    workaround: str = ""
    permanent_fix: str = ""


class KnownErrorPatch(Schema):
    title: str | None = Field(None, min_length=1, max_length=200)
    symptoms: str | None = None
    root_cause: str | None = None
    workaround: str | None = None
    permanent_fix: str | None = None


class KnownErrorActionIn(Schema):
    action: Literal["publish", "retire"]


class KnownErrorFilters(FilterSchema):
    q: str = Field("", description="full-text search over title, symptoms, root cause, workaround, fix")
    state: list[KnownErrorState] | None = None
    problem: uuid.UUID | None = None


class CandidateIncidentOut(Schema):
    id: uuid.UUID
    number: str
    short_description: str
    state: str
    opened_at: dt.datetime


class CandidateOut(Schema):
    key: str
    basis: Literal["configuration_item", "category"]
    title: str
    count: int
    configuration_item_id: uuid.UUID | None
    configuration_item_name: str
    category: str
    subcategory: str
    incidents: list[CandidateIncidentOut]


class CandidateFilters(Schema):
    min_incidents: int | None = Field(None, ge=1, le=1000)
    within_days: int | None = Field(None, ge=1, le=365)


class CandidateAcceptIn(Schema):
    key: str
    short_description: str = Field("", max_length=160)
    impact: int = Field(2, ge=1, le=3)
    urgency: int = Field(2, ge=1, le=3)
    assignment_group_id: uuid.UUID | None = None
    assigned_to_id: uuid.UUID | None = None
    min_incidents: int | None = Field(None, ge=1, le=1000)
    within_days: int | None = Field(None, ge=1, le=365)


class ProblemRules(Schema):
    candidate_min_incidents: int
    candidate_window_days: int


class ProblemRulesPatch(Schema):
    candidate_min_incidents: int | None = Field(None, ge=2, le=1000)
    candidate_window_days: int | None = Field(None, ge=1, le=365)


def _cursor_pagination(default: str, allowed: tuple[str, ...]) -> type[CursorPagination]:
    """ninja's cursor pagination with the ordering chosen per request and the UUIDv7 id as tie-breaker
    (the incidents API's OrderedCursorPagination, with this module's orderings)."""
    choices = Literal[allowed]  # type: ignore[valid-type]

    class Ordered(CursorPagination):
        class Input(CursorPagination.Input):
            ordering: choices = default

        def paginate_queryset(
            self, queryset: Any, pagination: Any, request: HttpRequest, **params: Any
        ) -> Any:
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

    return Ordered


ProblemPagination = _cursor_pagination(
    "-opened_at",
    ("-opened_at", "opened_at", "-updated_at", "updated_at", "priority", "-priority", "number", "-number"),
)
KnownErrorPagination = _cursor_pagination(
    "-updated_at", ("-updated_at", "updated_at", "-created_at", "created_at", "number", "-number")
)


def _resolve_refs(request: TenantRequest, data: dict[str, Any]) -> dict[str, Any]:
    """Turn ``*_id`` references into objects; an unknown id is a 422 naming the field."""
    out: dict[str, Any] = {}
    for key, value in data.items():
        if key not in ("assigned_to_id", "assignment_group_id", "configuration_item_id"):
            out[key] = value
            continue
        name = key.removesuffix("_id")
        if value is None:
            out[name] = None
            continue
        obj: Any
        if key == "configuration_item_id":
            try:
                obj = cmdb_selectors.ci_get(actor=request.actor, ci_id=value)
            except NotFound:
                obj = None
        else:
            obj = (Group if key == "assignment_group_id" else Person).objects.filter(pk=value).first()
        if obj is None:
            raise InvalidInput(f"{key}: not found", errors=[{"field": key, "message": "not found"}])
        out[name] = obj
    return out


# Known errors (fixed paths first)


@router.get("/known-errors", response=list[KnownErrorOut], summary="List and search known errors")
@paginate(KnownErrorPagination)
def list_known_errors(request: TenantRequest, tenant: TenantSlug, filters: Query[KnownErrorFilters]) -> Any:
    return selectors.known_error_list(actor=request.actor, **filters.dict())


@router.post("/known-errors", response={201: KnownErrorOut}, summary="Create a known error")
def create_known_error(request: TenantRequest, tenant: TenantSlug, payload: KnownErrorIn) -> Any:
    actor = request.actor
    data = payload.dict()
    problem_id = data.pop("problem_id")
    problem = None
    if problem_id is not None and actor.is_technician:  # others are refused (403) by the service
        try:
            problem = selectors.problem_get(actor=actor, problem_id=problem_id)
        except NotFound as exc:
            raise InvalidInput(
                "problem_id: not found", errors=[{"field": "problem_id", "message": "not found"}]
            ) from exc
    return Status(201, services.known_error_create(actor=actor, problem=problem, **data))


@router.get("/known-errors/{known_error_id}", response=KnownErrorOut, summary="Get a known error")
def get_known_error(request: TenantRequest, tenant: TenantSlug, known_error_id: uuid.UUID) -> Any:
    return selectors.known_error_get(actor=request.actor, known_error_id=known_error_id)


@router.patch("/known-errors/{known_error_id}", response=KnownErrorOut, summary="Update a known error")
def update_known_error(
    request: TenantRequest, tenant: TenantSlug, known_error_id: uuid.UUID, payload: KnownErrorPatch
) -> Any:
    actor = request.actor
    known_error = selectors.known_error_get(actor=actor, known_error_id=known_error_id)
    return services.known_error_update(
        actor=actor, known_error=known_error, **payload.dict(exclude_unset=True)
    )


@router.post(
    "/known-errors/{known_error_id}/actions",
    response=KnownErrorOut,
    summary="Publish or retire a known error",
)
def act_on_known_error(
    request: TenantRequest, tenant: TenantSlug, known_error_id: uuid.UUID, payload: KnownErrorActionIn
) -> Any:
    actor = request.actor
    known_error = selectors.known_error_get(actor=actor, known_error_id=known_error_id)
    return services.known_error_transition(actor=actor, known_error=known_error, action=payload.action)


@router.get(
    "/known-errors/{known_error_id}/history", response=list[ActivityOut], summary="Known error history"
)
def get_known_error_history(request: TenantRequest, tenant: TenantSlug, known_error_id: uuid.UUID) -> Any:
    actor = request.actor
    known_error = selectors.known_error_get(actor=actor, known_error_id=known_error_id)
    return activity_list(actor=actor, record_id=known_error.pk)


# Candidates


@router.get("/candidates", response=list[CandidateOut], summary="Problem candidates from recurring incidents")
def list_candidates(request: TenantRequest, tenant: TenantSlug, filters: Query[CandidateFilters]) -> Any:
    return selectors.problem_candidate_list(actor=request.actor, **filters.dict())


@router.post("/candidates", response={201: ProblemOut}, summary="Accept a candidate: open a problem")
def accept_candidate(request: TenantRequest, tenant: TenantSlug, payload: CandidateAcceptIn) -> Any:
    data = _resolve_refs(request, payload.dict())
    return Status(201, services.problem_candidate_accept(actor=request.actor, **data))


# Settings


@router.get("/settings", response=ProblemRules, summary="Problem candidate thresholds")
def get_settings(request: TenantRequest, tenant: TenantSlug) -> Any:
    return selectors.problem_settings_get(actor=request.actor)


@router.patch("/settings", response=ProblemRules, summary="Change problem candidate thresholds (admins)")
def patch_settings(request: TenantRequest, tenant: TenantSlug, payload: ProblemRulesPatch) -> Any:
    return services.problem_settings_set(actor=request.actor, **payload.dict(exclude_unset=True))


# Problems


@router.get("/", response=list[ProblemOut], summary="List problems")
@paginate(ProblemPagination)
def list_problems(request: TenantRequest, tenant: TenantSlug, filters: Query[ProblemFilters]) -> Any:
    return selectors.problem_list(actor=request.actor, **filters.dict())


@router.post("/", response={201: ProblemOut}, summary="Create a problem")
def create_problem(request: TenantRequest, tenant: TenantSlug, payload: ProblemIn) -> Any:
    data = _resolve_refs(request, payload.dict())
    return Status(201, services.problem_create(actor=request.actor, **data))


@router.get("/{problem_id}", response=ProblemOut, summary="Get a problem")
def get_problem(request: TenantRequest, tenant: TenantSlug, problem_id: uuid.UUID) -> Any:
    return selectors.problem_get(actor=request.actor, problem_id=problem_id)


@router.patch("/{problem_id}", response=ProblemOut, summary="Update a problem's fields and RCA")
def update_problem(
    request: TenantRequest, tenant: TenantSlug, problem_id: uuid.UUID, payload: ProblemPatch
) -> Any:
    actor = request.actor
    problem = selectors.problem_get(actor=actor, problem_id=problem_id)
    changes = _resolve_refs(request, payload.dict(exclude_unset=True))
    return services.problem_update(actor=actor, problem=problem, **changes)


@router.post("/{problem_id}/actions", response=ProblemOut, summary="Change a problem's state")
def act_on_problem(
    request: TenantRequest, tenant: TenantSlug, problem_id: uuid.UUID, payload: ProblemActionIn
) -> Any:
    actor = request.actor
    problem = selectors.problem_get(actor=actor, problem_id=problem_id)
    return services.problem_transition(actor=actor, problem=problem, **payload.dict())


@router.get("/{problem_id}/incidents", response=list[LinkedIncidentOut], summary="Linked incidents")
def list_linked_incidents(request: TenantRequest, tenant: TenantSlug, problem_id: uuid.UUID) -> Any:
    actor = request.actor
    problem = selectors.problem_get(actor=actor, problem_id=problem_id)
    return selectors.problem_incident_list(actor=actor, problem=problem)


@router.post("/{problem_id}/incidents", response={201: LinkedIncidentOut}, summary="Link an incident")
def link_incident(
    request: TenantRequest, tenant: TenantSlug, problem_id: uuid.UUID, payload: IncidentLinkIn
) -> Any:
    actor = request.actor
    problem = selectors.problem_get(actor=actor, problem_id=problem_id)
    try:
        incident = incident_selectors.incident_get(actor=actor, incident_id=payload.incident_id)
    except NotFound as exc:
        raise InvalidInput(
            "incident_id: not found", errors=[{"field": "incident_id", "message": "not found"}]
        ) from exc
    return Status(201, services.problem_incident_link(actor=actor, problem=problem, incident=incident))


@router.delete("/{problem_id}/incidents/{incident_id}", response={204: None}, summary="Unlink an incident")
def unlink_incident(
    request: TenantRequest, tenant: TenantSlug, problem_id: uuid.UUID, incident_id: uuid.UUID
) -> Any:
    actor = request.actor
    problem = selectors.problem_get(actor=actor, problem_id=problem_id)
    incident = incident_selectors.incident_get(actor=actor, incident_id=incident_id)
    services.problem_incident_unlink(actor=actor, problem=problem, incident=incident)
    return Status(204, None)


@router.get("/{problem_id}/comments", response=list[CommentOut], summary="Work notes and comments")
def list_comments(request: TenantRequest, tenant: TenantSlug, problem_id: uuid.UUID) -> Any:
    actor = request.actor
    problem = selectors.problem_get(actor=actor, problem_id=problem_id)
    return comment_list(actor=actor, record_id=problem.pk)


@router.post("/{problem_id}/comments", response={201: CommentOut}, summary="Add a work note or comment")
def add_comment(
    request: TenantRequest, tenant: TenantSlug, problem_id: uuid.UUID, payload: ProblemCommentIn
) -> Any:
    actor = request.actor
    problem = selectors.problem_get(actor=actor, problem_id=problem_id)
    comment = services.problem_comment(
        actor=actor, problem=problem, body=payload.body, work_note=payload.work_note
    )
    return Status(201, comment)


@router.get("/{problem_id}/history", response=list[ActivityOut], summary="Activity history, oldest first")
def get_history(request: TenantRequest, tenant: TenantSlug, problem_id: uuid.UUID) -> Any:
    actor = request.actor
    problem = selectors.problem_get(actor=actor, problem_id=problem_id)
    return activity_list(actor=actor, record_id=problem.pk)
