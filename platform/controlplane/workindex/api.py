"""/api/v1/queue: the technician's queue across every client they may enter (control plane).

Authenticated by a personal API token (``Authorization: Bearer``, never the session) or the console
session; read-only, so no CSRF check is needed. Bad filters answer 422 problem+json.
"""

import datetime as dt
import uuid
from typing import Any

from django.http import HttpRequest
from ninja import Field, Query, Router, Schema
from ninja.security.base import AuthBase

from controlplane.accounts.models import User

from . import selectors


class UserOrTokenAuth(AuthBase):
    """A personal API token when an Authorization header is sent (checked by the routing middleware; the
    session is then never read), else the signed-in session user."""

    openapi_type = "http"
    openapi_scheme = "bearer"

    def __call__(self, request: HttpRequest) -> Any:
        if "HTTP_AUTHORIZATION" in request.META and getattr(request, "api_token", None) is None:
            return None
        return request.user if request.user.is_authenticated else None


router = Router(tags=["queue"], auth=UserOrTokenAuth())


class QueueTenant(Schema):
    slug: str
    name: str


class QueueItemOut(Schema):
    record_type: str
    record_id: uuid.UUID
    tenant: QueueTenant
    number: str
    title: str
    state: str
    priority: int | None
    opened_at: dt.datetime
    due_at: dt.datetime | None = Field(..., description="The next SLA deadline (UTC); null without one")
    breached: bool
    sla_paused: bool
    assigned_to_me: bool
    url: str = Field(..., description="The record's console page, /t/<tenant>/...")


class QueueOut(Schema):
    items: list[QueueItemOut]
    next_cursor: str | None = Field(..., description="Pass as cursor for the next page; null on the last")


class QueueFilters(Schema):
    assigned_to_me: bool = False
    my_groups: bool = False
    unassigned: bool = False
    breached: bool = False
    due_within_hours: int | None = Field(None, ge=1, le=selectors.MAX_DUE_WITHIN_HOURS)
    tenant: str | None = Field(None, pattern=r"^[a-z0-9-]{1,40}$", description="A tenant slug")
    record_type: str | None = Field(None, description=", ".join(selectors.RECORD_LABELS))
    limit: int = Field(50, ge=1, le=selectors.MAX_LIMIT)
    cursor: str | None = None


@router.get("", response=QueueOut, summary="My queue: open records of all my clients, next deadline first")
def queue(request: HttpRequest, filters: Query[QueueFilters]) -> Any:
    user = request.auth  # type: ignore[attr-defined]
    assert isinstance(user, User)
    token = getattr(request, "api_token", None)
    scope = None if token is None or token.all_tenants else list(token.tenant_ids)
    page = selectors.workindex_queue(user=user, tenant_ids=scope, **filters.dict())
    return {
        "items": [
            {
                "record_type": row.item.record_type,
                "record_id": row.item.record_id,
                "tenant": {"slug": row.item.tenant.slug, "name": row.item.tenant.name},
                "number": row.item.number,
                "title": row.item.title,
                "state": row.item.state,
                "priority": row.item.priority,
                "opened_at": row.item.opened_at,
                "due_at": row.item.sla_due_at,
                "breached": row.item.breached,
                "sla_paused": row.item.sla_paused,
                "assigned_to_me": row.item.assigned_user_id == user.pk,
                "url": row.url,
            }
            for row in page.rows
        ],
        "next_cursor": page.next_cursor,
    }
