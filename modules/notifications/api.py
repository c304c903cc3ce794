"""REST API for notifications (/api/v1/t/{tenant}/notifications) and webhooks (/api/v1/t/{tenant}/webhooks).
Parse, call one service or selector, return."""

import datetime as dt
import uuid
from typing import Any

from ninja import Field, Query, Router, Schema, Status

from controlplane.api_auth import TenantSlug
from controlplane.http import TenantRequest
from modules.records.schemas import PersonRef

from . import selectors, services
from .models import EVENT_TYPES

router = Router(tags=["notifications"])
webhook_router = Router(tags=["webhooks"])


class EventOut(Schema):
    id: uuid.UUID
    event: str
    record_type: str
    record_id: uuid.UUID
    number: str
    title: str
    critical: bool
    occurred_at: dt.datetime
    actor: PersonRef | None = Field(None, alias="actor_person")


class NotificationOut(Schema):
    id: uuid.UUID
    event: EventOut
    read_at: dt.datetime | None
    created_at: dt.datetime


class NotificationPage(Schema):
    unread_count: int
    items: list[NotificationOut]


class NotificationFilters(Schema):
    unread_only: bool = False
    limit: int = Field(50, ge=1, le=200)


class ReadAllOut(Schema):
    marked: int


class PreferenceIO(Schema):
    email_opt_out: bool = Field(False, description="no email for non-critical events")
    muted_events: list[str] = Field(
        default_factory=list, description="non-critical event types without email"
    )


class BrandingIO(Schema):
    sender_name: str = ""
    reply_to: str = ""
    accent_colour: str = "#1f3a5f"
    logo_url: str = ""


class BrandingPatch(Schema):
    sender_name: str | None = None
    reply_to: str | None = None
    accent_colour: str | None = None
    logo_url: str | None = None


@router.get("", response=NotificationPage, summary="My notifications, newest first, with the unread count")
def list_notifications(
    request: TenantRequest, tenant: TenantSlug, filters: Query[NotificationFilters]
) -> Any:
    actor = request.actor
    items = selectors.notification_list(actor=actor, unread_only=filters.unread_only)[: filters.limit]
    return {"unread_count": selectors.notification_unread_count(actor=actor), "items": list(items)}


@router.post("/read-all", response=ReadAllOut, summary="Mark all my notifications read")
def read_all(request: TenantRequest, tenant: TenantSlug) -> Any:
    return {"marked": services.notification_read_all(actor=request.actor)}


@router.get("/preferences", response=PreferenceIO, summary="My email preferences")
def get_preferences(request: TenantRequest, tenant: TenantSlug) -> Any:
    return selectors.preference_get(actor=request.actor)


@router.put("/preferences", response=PreferenceIO, summary="Set my email preferences")
def put_preferences(request: TenantRequest, tenant: TenantSlug, payload: PreferenceIO) -> Any:
    return services.preference_set(actor=request.actor, **payload.dict())


@router.get("/settings", response=BrandingIO, summary="The tenant's email branding")
def get_settings(request: TenantRequest, tenant: TenantSlug) -> Any:
    return selectors.notification_settings_get(actor=request.actor)


@router.patch("/settings", response=BrandingIO, summary="Change the tenant's email branding (admins)")
def patch_settings(request: TenantRequest, tenant: TenantSlug, payload: BrandingPatch) -> Any:
    return services.notification_settings_set(actor=request.actor, **payload.dict(exclude_unset=True))


@router.post("/{notification_id}/read", response=NotificationOut, summary="Mark one notification read")
def read_one(request: TenantRequest, tenant: TenantSlug, notification_id: uuid.UUID) -> Any:
    actor = request.actor
    notification = selectors.notification_get(actor=actor, notification_id=notification_id)
    return services.notification_read(actor=actor, notification=notification)


class WebhookEndpointIn(Schema):
    url: str = Field(..., max_length=500)
    event_types: list[str] = Field(..., description=f"a non-empty subset of {', '.join(EVENT_TYPES)}")
    description: str = Field("", max_length=200)


class WebhookEndpointOut(Schema):
    id: uuid.UUID
    url: str
    description: str
    event_types: list[str]
    active: bool
    disabled_reason: str
    created_at: dt.datetime


class WebhookEndpointCreated(WebhookEndpointOut):
    secret: str = Field(..., description="the signing secret; shown only in this response")


class WebhookAttemptOut(Schema):
    at: str
    status: int | None
    response: str
    error: str


class WebhookDeliveryOut(Schema):
    id: uuid.UUID
    event: EventOut
    idempotency_key: str
    state: str
    attempt_count: int
    attempts: list[WebhookAttemptOut] = Field(..., alias="attempts_log")
    next_attempt_at: dt.datetime | None
    delivered_at: dt.datetime | None
    created_at: dt.datetime


@webhook_router.get("", response=list[WebhookEndpointOut], summary="Webhook endpoints (no secrets)")
def list_endpoints(request: TenantRequest, tenant: TenantSlug) -> Any:
    return selectors.webhook_endpoint_list(actor=request.actor)


@webhook_router.post("", response={201: WebhookEndpointCreated}, summary="Add a webhook endpoint (admins)")
def create_endpoint(request: TenantRequest, tenant: TenantSlug, payload: WebhookEndpointIn) -> Any:
    endpoint, secret = services.webhook_endpoint_create(actor=request.actor, **payload.dict())
    return Status(201, {**WebhookEndpointOut.from_orm(endpoint).dict(), "secret": secret})


@webhook_router.get("/{endpoint_id}", response=WebhookEndpointOut, summary="One webhook endpoint")
def get_endpoint(request: TenantRequest, tenant: TenantSlug, endpoint_id: uuid.UUID) -> Any:
    return selectors.webhook_endpoint_get(actor=request.actor, endpoint_id=endpoint_id)


@webhook_router.delete("/{endpoint_id}", response={204: None}, summary="Remove a webhook endpoint (admins)")
def delete_endpoint(request: TenantRequest, tenant: TenantSlug, endpoint_id: uuid.UUID) -> Any:
    actor = request.actor
    endpoint = selectors.webhook_endpoint_get(actor=actor, endpoint_id=endpoint_id)
    services.webhook_endpoint_delete(actor=actor, endpoint=endpoint)
    return Status(204, None)


@webhook_router.get(
    "/{endpoint_id}/deliveries", response=list[WebhookDeliveryOut], summary="Delivery log, newest first"
)
def list_deliveries(
    request: TenantRequest, tenant: TenantSlug, endpoint_id: uuid.UUID, limit: int = Query(100, ge=1, le=500)
) -> Any:
    actor = request.actor
    endpoint = selectors.webhook_endpoint_get(actor=actor, endpoint_id=endpoint_id)
    return selectors.webhook_delivery_list(actor=actor, endpoint=endpoint)[:limit]
