"""/api/v1/t/{tenant}/mailin: a tenant's inbound email addresses (with optional IMAP mailbox) and the
messages that were ignored or failed, for the provider's technicians and admins."""

import datetime as dt
import uuid
from typing import Any, Literal

from ninja import Field, Query, Router, Schema, Status

from controlplane.api_auth import TenantSlug
from controlplane.http import TenantRequest

from . import selectors, services
from .models import InboundAddress

router = Router(tags=["mailin"])


class MailboxIn(Schema):
    host: str = Field(..., min_length=1, max_length=255)
    port: int = Field(993, ge=1, le=65535)
    security: Literal["tls", "starttls", "none"] = "tls"
    username: str = Field(..., min_length=1, max_length=255)
    password: str = Field(..., max_length=255, description="Write-only; never returned.")
    folder: str = Field("INBOX", min_length=1, max_length=255)
    enabled: bool = True


class MailboxOut(Schema):
    host: str
    port: int
    security: str
    username: str
    folder: str
    enabled: bool
    last_polled_at: dt.datetime | None
    last_error: str


class AddressIn(Schema):
    address: str = Field(..., max_length=254)
    creates: Literal["incident", "service_request"] = "incident"
    catalog_item_id: uuid.UUID | None = None
    mailbox: MailboxIn | None = None


class AddressOut(Schema):
    id: int
    address: str
    creates: str
    catalog_item_id: uuid.UUID | None
    created_at: dt.datetime
    mailbox: MailboxOut | None


class MessageFilters(Schema):
    status: list[Literal["received", "processed", "ignored", "failed"]] = Field(
        ["failed", "ignored"], description="default: failed and ignored"
    )
    limit: int = Field(50, ge=1, le=200)


class MessageOut(Schema):
    id: int
    received_at: dt.datetime
    via: str
    envelope_sender: str
    envelope_recipients: list[str]
    from_address: str
    subject: str
    size: int
    status: str
    reason: str
    attachment_errors: list[dict[str, str]]
    result_type: str
    result_id: uuid.UUID | None
    result_number: str


def _out(address: InboundAddress) -> dict[str, Any]:
    mailbox = getattr(address, "mailbox", None)
    return {
        "id": address.pk,
        "address": address.address,
        "creates": address.creates,
        "catalog_item_id": address.catalog_item_id,
        "created_at": address.created_at,
        "mailbox": MailboxOut.from_orm(mailbox) if mailbox is not None else None,
    }


@router.get("/addresses", response=list[AddressOut], summary="Inbound addresses of this tenant")
def list_addresses(request: TenantRequest, tenant: TenantSlug) -> Any:
    assert request.tenant is not None
    return [_out(a) for a in selectors.inbound_address_list(actor=request.actor, tenant=request.tenant)]


@router.post("/addresses", response={201: AddressOut}, summary="Add an inbound address")
def create_address(request: TenantRequest, tenant: TenantSlug, payload: AddressIn) -> Any:
    assert request.tenant is not None
    address = services.inbound_address_create(
        actor=request.actor,
        tenant=request.tenant,
        address=payload.address,
        creates=payload.creates,
        catalog_item_id=payload.catalog_item_id,
        mailbox=payload.mailbox.dict() if payload.mailbox is not None else None,
    )
    return Status(201, _out(address))


@router.put("/addresses/{address_id}/mailbox", response=AddressOut, summary="Set the address's IMAP mailbox")
def set_mailbox(request: TenantRequest, tenant: TenantSlug, address_id: int, payload: MailboxIn) -> Any:
    assert request.tenant is not None
    address = selectors.inbound_address_get(actor=request.actor, tenant=request.tenant, address_id=address_id)
    services.inbound_mailbox_set(actor=request.actor, address=address, **payload.dict())
    return _out(
        selectors.inbound_address_get(actor=request.actor, tenant=request.tenant, address_id=address_id)
    )


@router.delete("/addresses/{address_id}", response={204: None}, summary="Remove an inbound address")
def delete_address(request: TenantRequest, tenant: TenantSlug, address_id: int) -> Any:
    assert request.tenant is not None
    address = selectors.inbound_address_get(actor=request.actor, tenant=request.tenant, address_id=address_id)
    services.inbound_address_delete(actor=request.actor, address=address)
    return Status(204, None)


@router.get("/messages", response=list[MessageOut], summary="Received messages (default: failed and ignored)")
def list_messages(request: TenantRequest, tenant: TenantSlug, filters: Query[MessageFilters]) -> Any:
    assert request.tenant is not None
    return selectors.inbound_message_list(
        actor=request.actor, tenant=request.tenant, statuses=filters.status, limit=filters.limit
    )
