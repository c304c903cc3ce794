"""REST API for the service catalog (/api/v1/t/{tenant}/catalog) and service requests
(/api/v1/t/{tenant}/requests). Parse, call one service or selector, return."""

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
from modules.people.models import Group, Person
from modules.records.schemas import ActivityOut, CommentIn, CommentOut, GroupRef, PersonRef
from modules.records.selectors import activity_list, comment_list

from . import selectors, services

catalog_router = Router(tags=["service catalog"])
router = Router(tags=["service requests"])

RequestState = Literal[
    "submitted", "pending_approval", "approved", "rejected", "in_progress", "fulfilled", "cancelled"
]
Ordering = Literal["-opened_at", "opened_at", "-updated_at", "updated_at", "number", "-number"]
FormSchema = dict[str, Any]


class CatalogCategoryOut(Schema):
    id: uuid.UUID
    name: str
    description: str
    order: int


class CatalogCategoryIn(Schema):
    name: str = Field(..., min_length=1, max_length=120)
    description: str = ""
    order: int = 100


class CatalogCategoryPatch(Schema):
    name: str | None = Field(None, min_length=1, max_length=120)
    description: str | None = None
    order: int | None = None


class ApprovalStepOut(Schema):
    order: int
    mode: Literal["one", "all"]
    approver_person: PersonRef | None
    approver_role: str
    approver_group: GroupRef | None


class ApprovalStepIn(Schema):
    order: int = Field(..., ge=1)
    mode: Literal["one", "all"] = "one"
    approver_person_id: uuid.UUID | None = None
    approver_role: Literal["", "requester_manager", "approver", "client_admin"] = ""
    approver_group_id: uuid.UUID | None = None


class CatalogItemOut(Schema):
    id: uuid.UUID
    name: str
    short_description: str
    category: CatalogCategoryOut
    form_schema: FormSchema
    fulfilment_group: GroupRef | None
    expected_delivery_hours: int
    approval_required: bool
    active: bool
    approval_steps: list[ApprovalStepOut]

    @staticmethod
    def resolve_approval_steps(obj: Any) -> list[Any]:
        return list(obj.approval_steps.all())


class CatalogItemIn(Schema):
    name: str = Field(..., min_length=1, max_length=160)
    short_description: str = Field("", max_length=300)
    category_id: uuid.UUID
    form_schema: FormSchema = Field(default_factory=lambda: {"type": "object", "properties": {}})
    fulfilment_group_id: uuid.UUID | None = None
    expected_delivery_hours: int = Field(72, ge=0, le=8760)
    approval_required: bool = False
    active: bool = True
    approval_steps: list[ApprovalStepIn] = []


class CatalogItemPatch(Schema):
    name: str | None = Field(None, min_length=1, max_length=160)
    short_description: str | None = Field(None, max_length=300)
    category_id: uuid.UUID | None = None
    form_schema: FormSchema | None = None
    fulfilment_group_id: uuid.UUID | None = None
    expected_delivery_hours: int | None = Field(None, ge=0, le=8760)
    approval_required: bool | None = None
    active: bool | None = None
    approval_steps: list[ApprovalStepIn] | None = None


class CatalogItemFilters(FilterSchema):
    category: uuid.UUID | None = None
    q: str = ""
    include_inactive: bool = False


class OrderLineIn(Schema):
    catalog_item_id: uuid.UUID
    variables: dict[str, Any] = {}
    quantity: int = 1


class ServiceRequestIn(Schema):
    requested_for_id: uuid.UUID | None = None
    items: list[OrderLineIn] = Field(..., min_length=1)


class ServiceRequestOut(Schema):
    id: uuid.UUID
    number: str
    short_description: str
    requested_for: PersonRef
    opened_by: PersonRef | None
    state: RequestState
    opened_at: dt.datetime
    due_at: dt.datetime | None
    approved_at: dt.datetime | None
    closed_at: dt.datetime | None
    updated_at: dt.datetime


class ServiceRequestFilters(FilterSchema):
    state: list[RequestState] | None = None
    requested_for: uuid.UUID | None = None
    open_only: bool = False
    q: str = ""
    opened_after: dt.datetime | None = None
    opened_before: dt.datetime | None = None


class CatalogItemRef(Schema):
    id: uuid.UUID
    name: str


class RequestedItemOut(Schema):
    id: uuid.UUID
    number: str
    catalog_item: CatalogItemRef
    quantity: int
    variables: dict[str, Any]
    state: Literal["pending_approval", "in_progress", "fulfilled", "rejected", "cancelled"]


class ApprovalOut(Schema):
    id: uuid.UUID
    request_id: uuid.UUID
    requested_item_id: uuid.UUID | None
    step: int
    mode: Literal["one", "all"]
    approver: PersonRef | None
    approver_role: str
    via_group: GroupRef | None
    state: Literal["not_requested", "pending", "approved", "rejected", "skipped"]
    comment: str
    decided_at: dt.datetime | None
    decided_by: PersonRef | None
    delegated_from: PersonRef | None
    reminder_count: int
    resent_at: dt.datetime | None


class DecisionIn(Schema):
    decision: Literal["approve", "reject"]
    comment: str = ""


class DelegateIn(Schema):
    delegate_to_id: uuid.UUID


class TaskOut(Schema):
    id: uuid.UUID
    number: str
    requested_item_id: uuid.UUID
    request_id: uuid.UUID
    short_description: str
    assignment_group: GroupRef | None
    assigned_to: PersonRef | None
    state: Literal["open", "in_progress", "closed_complete", "closed_skipped"]
    closed_at: dt.datetime | None
    updated_at: dt.datetime

    @staticmethod
    def resolve_request_id(obj: Any) -> uuid.UUID:
        return obj.requested_item.request_id


class TaskPatch(Schema):
    short_description: str | None = Field(None, min_length=1, max_length=300)
    assignment_group_id: uuid.UUID | None = None
    assigned_to_id: uuid.UUID | None = None


class TaskActionIn(Schema):
    action: Literal["start", "complete", "skip"]
    comment: str = ""


class TaskFilters(FilterSchema):
    assignment_group: uuid.UUID | None = None
    open_only: bool = False


class CancelIn(Schema):
    reason: str = ""


class OrderedCursorPagination(CursorPagination):
    """ninja's cursor pagination with the ordering chosen per request and the UUIDv7 id as tie-breaker."""

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
        except (ValueError, ValidationError) as exc:
            raise InvalidInput(
                "invalid cursor for this ordering",
                errors=[{"field": "cursor", "message": "start again without a cursor"}],
            ) from exc


def _ref(model: type[Person] | type[Group], value: uuid.UUID | None, field: str) -> Any:
    """A directory object by id; an unknown id is a 422 naming ``field``."""
    if value is None:
        return None
    obj = model.objects.filter(pk=value).first()
    if obj is None:
        raise InvalidInput(f"{field}: not found", errors=[{"field": field, "message": "not found"}])
    return obj


def _category(request: TenantRequest, value: uuid.UUID, field: str = "category_id") -> Any:
    try:
        return selectors.catalog_category_get(actor=request.actor, category_id=value)
    except NotFound as exc:
        raise InvalidInput(f"{field}: not found", errors=[{"field": field, "message": "not found"}]) from exc


def _steps(steps: list[ApprovalStepIn]) -> list[services.StepSpec]:
    return [
        services.StepSpec(
            order=s.order,
            mode=s.mode,
            approver_person=_ref(Person, s.approver_person_id, f"approval_steps[{i}].approver_person_id"),
            approver_role=s.approver_role,
            approver_group=_ref(Group, s.approver_group_id, f"approval_steps[{i}].approver_group_id"),
        )
        for i, s in enumerate(steps)
    ]


def _item_fields(request: TenantRequest, data: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in data.items():
        if key == "category_id":
            out["category"] = _category(request, value) if value is not None else None
        elif key == "fulfilment_group_id":
            out["fulfilment_group"] = _ref(Group, value, key)
        elif key == "approval_steps":
            out[key] = _steps([ApprovalStepIn(**s) for s in value]) if value is not None else None
        else:
            out[key] = value
    return out


# /t/{tenant}/catalog


@catalog_router.get("/categories", response=list[CatalogCategoryOut], summary="Catalog categories")
def list_categories(request: TenantRequest, tenant: TenantSlug) -> Any:
    return selectors.catalog_category_list(actor=request.actor)


@catalog_router.post(
    "/categories", response={201: CatalogCategoryOut}, summary="Add a category (technicians, admins)"
)
def create_category(request: TenantRequest, tenant: TenantSlug, payload: CatalogCategoryIn) -> Any:
    return Status(201, services.catalog_category_create(actor=request.actor, **payload.dict()))


@catalog_router.patch("/categories/{category_id}", response=CatalogCategoryOut, summary="Change a category")
def update_category(
    request: TenantRequest, tenant: TenantSlug, category_id: uuid.UUID, payload: CatalogCategoryPatch
) -> Any:
    category = selectors.catalog_category_get(actor=request.actor, category_id=category_id)
    return services.catalog_category_update(
        actor=request.actor, category=category, **payload.dict(exclude_unset=True)
    )


@catalog_router.get("/items", response=list[CatalogItemOut], summary="Catalog items with their forms")
def list_items(request: TenantRequest, tenant: TenantSlug, filters: Query[CatalogItemFilters]) -> Any:
    return selectors.catalog_item_list(actor=request.actor, **filters.dict())


@catalog_router.post("/items", response={201: CatalogItemOut}, summary="Add an item (technicians, admins)")
def create_item(request: TenantRequest, tenant: TenantSlug, payload: CatalogItemIn) -> Any:
    item = services.catalog_item_create(actor=request.actor, **_item_fields(request, payload.dict()))
    return Status(201, selectors.catalog_item_get(actor=request.actor, catalog_item_id=item.pk))


@catalog_router.get("/items/{item_id}", response=CatalogItemOut, summary="A catalog item and its form")
def get_item(request: TenantRequest, tenant: TenantSlug, item_id: uuid.UUID) -> Any:
    return selectors.catalog_item_get(actor=request.actor, catalog_item_id=item_id)


@catalog_router.patch(
    "/items/{item_id}", response=CatalogItemOut, summary="Change an item (technicians, admins)"
)
def update_item(
    request: TenantRequest, tenant: TenantSlug, item_id: uuid.UUID, payload: CatalogItemPatch
) -> Any:
    actor = request.actor
    item = selectors.catalog_item_get(actor=actor, catalog_item_id=item_id)
    services.catalog_item_update(
        actor=actor, item=item, **_item_fields(request, payload.dict(exclude_unset=True))
    )
    return selectors.catalog_item_get(actor=actor, catalog_item_id=item_id)


# /t/{tenant}/requests: fixed paths first, then /{request_id}


@router.get("/", response=list[ServiceRequestOut], summary="List service requests")
@paginate(OrderedCursorPagination)
def list_requests(request: TenantRequest, tenant: TenantSlug, filters: Query[ServiceRequestFilters]) -> Any:
    return selectors.service_request_list(actor=request.actor, **filters.dict())


@router.post("/", response={201: ServiceRequestOut}, summary="Order catalog items (submit a request)")
def submit_request(request: TenantRequest, tenant: TenantSlug, payload: ServiceRequestIn) -> Any:
    created = services.request_submit(
        actor=request.actor,
        requested_for=_ref(Person, payload.requested_for_id, "requested_for_id"),
        items=[
            {"catalog_item": line.catalog_item_id, "variables": line.variables, "quantity": line.quantity}
            for line in payload.items
        ],
    )
    return Status(201, created)


@router.get("/approvals", response=list[ApprovalOut], summary="Approvals waiting for me")
def my_approvals(request: TenantRequest, tenant: TenantSlug) -> Any:
    return selectors.approval_list_for(actor=request.actor)


@router.post("/approvals/{approval_id}/decision", response=ApprovalOut, summary="Approve or reject")
def decide_approval(
    request: TenantRequest, tenant: TenantSlug, approval_id: uuid.UUID, payload: DecisionIn
) -> Any:
    approval = selectors.approval_get(actor=request.actor, approval_id=approval_id)
    return services.approval_decide(actor=request.actor, approval=approval, **payload.dict())


@router.post("/approvals/{approval_id}/resend", response=ApprovalOut, summary="Remind the approver")
def resend_approval(request: TenantRequest, tenant: TenantSlug, approval_id: uuid.UUID) -> Any:
    approval = selectors.approval_get(actor=request.actor, approval_id=approval_id)
    return services.approval_resend(actor=request.actor, approval=approval)


@router.post("/approvals/{approval_id}/delegate", response=ApprovalOut, summary="Delegate to another person")
def delegate_approval(
    request: TenantRequest, tenant: TenantSlug, approval_id: uuid.UUID, payload: DelegateIn
) -> Any:
    approval = selectors.approval_get(actor=request.actor, approval_id=approval_id)
    delegate_to = _ref(Person, payload.delegate_to_id, "delegate_to_id")
    return services.approval_delegate(actor=request.actor, approval=approval, delegate_to=delegate_to)


@router.get("/tasks", response=list[TaskOut], summary="Fulfilment task queue (technicians)")
def list_tasks(request: TenantRequest, tenant: TenantSlug, filters: Query[TaskFilters]) -> Any:
    return selectors.task_list(actor=request.actor, **filters.dict())


@router.get("/tasks/{task_id}", response=TaskOut, summary="A fulfilment task")
def get_task(request: TenantRequest, tenant: TenantSlug, task_id: uuid.UUID) -> Any:
    return selectors.task_get(actor=request.actor, task_id=task_id)


@router.patch("/tasks/{task_id}", response=TaskOut, summary="Assign or describe a task (technicians)")
def update_task(request: TenantRequest, tenant: TenantSlug, task_id: uuid.UUID, payload: TaskPatch) -> Any:
    task = selectors.task_get(actor=request.actor, task_id=task_id)
    changes: dict[str, Any] = {}
    for key, value in payload.dict(exclude_unset=True).items():
        if key == "assignment_group_id":
            changes["assignment_group"] = _ref(Group, value, key)
        elif key == "assigned_to_id":
            changes["assigned_to"] = _ref(Person, value, key)
        else:
            changes[key] = value
    return services.task_update(actor=request.actor, task=task, **changes)


@router.post("/tasks/{task_id}/actions", response=TaskOut, summary="Start, complete or skip a task")
def act_on_task(request: TenantRequest, tenant: TenantSlug, task_id: uuid.UUID, payload: TaskActionIn) -> Any:
    task = selectors.task_get(actor=request.actor, task_id=task_id)
    return services.task_transition(actor=request.actor, task=task, **payload.dict())


@router.get("/{request_id}", response=ServiceRequestOut, summary="Get a service request")
def get_request(request: TenantRequest, tenant: TenantSlug, request_id: uuid.UUID) -> Any:
    return selectors.service_request_get(actor=request.actor, service_request_id=request_id)


@router.get("/{request_id}/items", response=list[RequestedItemOut], summary="Requested items and answers")
def list_items_of_request(request: TenantRequest, tenant: TenantSlug, request_id: uuid.UUID) -> Any:
    found = selectors.service_request_get(actor=request.actor, service_request_id=request_id)
    return selectors.requested_item_list(actor=request.actor, request=found)


@router.get("/{request_id}/approvals", response=list[ApprovalOut], summary="Approvals, in step order")
def list_approvals(request: TenantRequest, tenant: TenantSlug, request_id: uuid.UUID) -> Any:
    found = selectors.service_request_get(actor=request.actor, service_request_id=request_id)
    return selectors.approval_list(actor=request.actor, request=found)


@router.get("/{request_id}/tasks", response=list[TaskOut], summary="Fulfilment tasks of a request")
def list_tasks_of_request(request: TenantRequest, tenant: TenantSlug, request_id: uuid.UUID) -> Any:
    found = selectors.service_request_get(actor=request.actor, service_request_id=request_id)
    return selectors.task_list(actor=request.actor, request=found)


@router.post("/{request_id}/cancel", response=ServiceRequestOut, summary="Cancel a request")
def cancel_request(
    request: TenantRequest, tenant: TenantSlug, request_id: uuid.UUID, payload: CancelIn
) -> Any:
    found = selectors.service_request_get(actor=request.actor, service_request_id=request_id)
    return services.request_cancel(actor=request.actor, request=found, reason=payload.reason)


@router.get("/{request_id}/comments", response=list[CommentOut], summary="Comments and work notes")
def list_comments(request: TenantRequest, tenant: TenantSlug, request_id: uuid.UUID) -> Any:
    found = selectors.service_request_get(actor=request.actor, service_request_id=request_id)
    return comment_list(actor=request.actor, record_id=found.pk)


@router.post("/{request_id}/comments", response={201: CommentOut}, summary="Add a comment or work note")
def add_comment(request: TenantRequest, tenant: TenantSlug, request_id: uuid.UUID, payload: CommentIn) -> Any:
    found = selectors.service_request_get(actor=request.actor, service_request_id=request_id)
    comment = services.request_comment(
        actor=request.actor, request=found, body=payload.body, work_note=payload.work_note
    )
    return Status(201, comment)


@router.get("/{request_id}/history", response=list[ActivityOut], summary="Activity history, oldest first")
def get_history(request: TenantRequest, tenant: TenantSlug, request_id: uuid.UUID) -> Any:
    found = selectors.service_request_get(actor=request.actor, service_request_id=request_id)
    return activity_list(actor=request.actor, record_id=found.pk)
