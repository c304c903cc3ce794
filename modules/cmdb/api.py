"""REST API for the CMDB: /api/v1/t/{tenant}/cmdb. Parse, call one service or selector, return."""

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
from modules.records.schemas import ActivityOut, GroupRef, PersonRef

from . import selectors, services
from .classes import class_table
from .models import CIClass, Lifecycle, RelType
from .selectors import MAX_IMPACT_DEPTH

router = Router(tags=["cmdb"])

ClassName = Literal[
    "hardware",
    "computer",
    "server",
    "virtual_machine",
    "network_device",
    "software",
    "application",
    "database",
    "business_service",
    "site",
    "generic",
]
LifecycleName = Literal["planned", "ordered", "in_stock", "operational", "maintenance", "retired"]
RelTypeName = Literal[
    "hosted_on", "depends_on", "uses", "runs_on", "contains", "connects_to", "supports", "installed_on"
]
Ordering = Literal["name", "-name", "number", "-number", "-updated_at", "updated_at"]

# The Literals above spell the model's choices for the OpenAPI document; keep them in step.
assert set(ClassName.__args__) == set(CIClass.values)  # type: ignore[attr-defined]
assert set(LifecycleName.__args__) == set(Lifecycle.values)  # type: ignore[attr-defined]
assert set(RelTypeName.__args__) == set(RelType.values)  # type: ignore[attr-defined]


class CIOut(Schema):
    id: uuid.UUID
    number: str
    name: str
    ci_class: ClassName
    lifecycle: LifecycleName
    owner: PersonRef | None
    support_group: GroupRef | None
    description: str
    attributes: dict[str, Any]
    external_ref: str | None
    created_at: dt.datetime
    updated_at: dt.datetime


class CIIn(Schema):
    name: str = Field(..., min_length=1, max_length=200)
    ci_class: ClassName
    lifecycle: LifecycleName = "operational"
    owner_id: uuid.UUID | None = None
    support_group_id: uuid.UUID | None = None
    description: str = ""
    attributes: dict[str, Any] = Field(default_factory=dict, description="class attributes (GET /classes)")
    external_ref: str | None = Field(None, max_length=200)


class CIPatch(Schema):
    name: str | None = Field(None, min_length=1, max_length=200)
    ci_class: ClassName | None = None
    lifecycle: LifecycleName | None = None
    owner_id: uuid.UUID | None = None
    support_group_id: uuid.UUID | None = None
    description: str | None = None
    attributes: dict[str, Any] | None = Field(
        None, description="JSON merge patch of the attributes: a value sets, null removes, absent keeps"
    )


class CIFilters(FilterSchema):
    ci_class: ClassName | None = None
    lifecycle: LifecycleName | None = None
    owner: uuid.UUID | None = None
    q: str = ""


class CIRefOut(Schema):
    id: uuid.UUID
    number: str
    name: str
    ci_class: str
    lifecycle: str


class RelationshipOut(Schema):
    id: int
    rel_type: RelTypeName
    direction: Literal["outgoing", "incoming"]
    reading: str = Field(..., description='how it reads from this CI: "runs on" outgoing, "runs" incoming')
    other: CIRefOut


class RelationshipIn(Schema):
    """This CI is the source with ``target_id`` ("this runs on target"), or the target with
    ``source_id`` ("source runs on this"). Give exactly one of the two."""

    rel_type: RelTypeName
    target_id: uuid.UUID | None = None
    source_id: uuid.UUID | None = None


class ImpactStepOut(Schema):
    source: str
    reading: str
    target: str


class ImpactOut(Schema):
    id: uuid.UUID
    number: str
    name: str
    ci_class: str
    depth: int = Field(..., description="hops from the start CI (1 = directly impacted)")
    path: list[str] = Field(..., description="CI numbers from the start CI to this one")
    via: list[str] = Field(..., description="relationship types along the path")
    steps: list[ImpactStepOut]
    explanation: str
    is_business_service: bool


class AttributeOut(Schema):
    name: str
    label: str
    type: str
    required: bool
    choices: list[dict[str, str]]
    minimum: float | None
    maximum: float | None


class ClassOut(Schema):
    ci_class: str
    label: str
    attributes: list[AttributeOut]


class OrderedCursorPagination(CursorPagination):
    """ninja's cursor pagination with the ordering chosen per request and the UUIDv7 id as tie-breaker
    (as the incidents API)."""

    class Input(CursorPagination.Input):
        ordering: Ordering = "name"

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


def _resolve_refs(data: dict[str, Any]) -> dict[str, Any]:
    """Turn ``owner_id`` / ``support_group_id`` into directory objects; an unknown id is a 422."""
    out: dict[str, Any] = {}
    for key, value in data.items():
        if key in ("owner_id", "support_group_id"):
            name = key.removesuffix("_id")
            if value is None:
                out[name] = None
                continue
            model = Group if key == "support_group_id" else Person
            obj = model.objects.filter(pk=value).first()
            if obj is None:
                raise InvalidInput(f"{key}: not found", errors=[{"field": key, "message": "not found"}])
            out[name] = obj
        else:
            out[key] = value
    return out


@router.get("/classes", response=list[ClassOut], summary="CI classes and their attributes")
def list_classes(request: TenantRequest, tenant: TenantSlug) -> Any:
    return class_table()


@router.get("/cis", response=list[CIOut], summary="List configuration items")
@paginate(OrderedCursorPagination)
def list_cis(request: TenantRequest, tenant: TenantSlug, filters: Query[CIFilters]) -> Any:
    return selectors.ci_list(actor=request.actor, **filters.dict())


@router.post("/cis", response={201: CIOut}, summary="Create a configuration item")
def create_ci(request: TenantRequest, tenant: TenantSlug, payload: CIIn) -> Any:
    return Status(201, services.ci_create(actor=request.actor, **_resolve_refs(payload.dict())))


@router.get("/cis/{ci_id}", response=CIOut, summary="Get a configuration item")
def get_ci(request: TenantRequest, tenant: TenantSlug, ci_id: uuid.UUID) -> Any:
    return selectors.ci_get(actor=request.actor, ci_id=ci_id)


@router.patch("/cis/{ci_id}", response=CIOut, summary="Update a configuration item")
def update_ci(request: TenantRequest, tenant: TenantSlug, ci_id: uuid.UUID, payload: CIPatch) -> Any:
    actor = request.actor
    ci = selectors.ci_get(actor=actor, ci_id=ci_id)
    return services.ci_update(actor=actor, ci=ci, **_resolve_refs(payload.dict(exclude_unset=True)))


@router.get("/cis/{ci_id}/relationships", response=list[RelationshipOut], summary="Relationships, both ways")
def list_relationships(request: TenantRequest, tenant: TenantSlug, ci_id: uuid.UUID) -> Any:
    actor = request.actor
    ci = selectors.ci_get(actor=actor, ci_id=ci_id)
    return selectors.ci_relationship_list(actor=actor, ci=ci)


@router.post("/cis/{ci_id}/relationships", response={201: RelationshipOut}, summary="Add a relationship")
def add_relationship(
    request: TenantRequest, tenant: TenantSlug, ci_id: uuid.UUID, payload: RelationshipIn
) -> Any:
    if (payload.target_id is None) == (payload.source_id is None):
        raise InvalidInput(
            "give exactly one of target_id and source_id",
            errors=[{"field": "target_id", "message": "give exactly one of target_id and source_id"}],
        )
    outgoing = payload.target_id is not None
    other = payload.target_id if outgoing else payload.source_id
    assert other is not None
    relationship = services.relationship_create(
        actor=request.actor,
        source_id=ci_id if outgoing else other,
        target_id=other if outgoing else ci_id,
        rel_type=payload.rel_type,
    )
    return Status(201, selectors.relationship_view(relationship=relationship, ci_id=ci_id))


@router.delete("/relationships/{relationship_id}", response={204: None}, summary="Remove a relationship")
def delete_relationship(request: TenantRequest, tenant: TenantSlug, relationship_id: int) -> Any:
    services.relationship_delete(actor=request.actor, relationship_id=relationship_id)
    return Status(204, None)


@router.get(
    "/cis/{ci_id}/impact", response=list[ImpactOut], summary="Impact analysis: what a failure reaches"
)
def get_impact(
    request: TenantRequest,
    tenant: TenantSlug,
    ci_id: uuid.UUID,
    depth: int = Query(6, ge=1, le=MAX_IMPACT_DEPTH, description="hops to follow"),
) -> Any:
    impacted = selectors.ci_impact_get(actor=request.actor, ci_id=ci_id, depth=depth)
    return [
        {
            "id": i.id,
            "number": i.number,
            "name": i.name,
            "ci_class": i.ci_class,
            "depth": i.depth,
            "path": i.path_numbers,
            "via": i.via,
            "steps": i.steps,
            "explanation": i.explanation,
            "is_business_service": i.is_business_service,
        }
        for i in impacted
    ]


@router.get("/cis/{ci_id}/history", response=list[ActivityOut], summary="Activity history, oldest first")
def get_history(request: TenantRequest, tenant: TenantSlug, ci_id: uuid.UUID) -> Any:
    actor = request.actor
    ci = selectors.ci_get(actor=actor, ci_id=ci_id)
    return selectors.ci_history(actor=actor, ci=ci)
