"""The request type tenant entry points see, once the routing middleware has run."""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.http import HttpRequest

if TYPE_CHECKING:
    from modules.records.actor import Actor
    from tenants.models import Tenant


class TenantRequest(HttpRequest):
    """An HttpRequest with what ``tenants.routing.TenantRoutingMiddleware`` sets on it.

    ``tenant``: the tenant this request runs in (None on public pages); ``portal_tenant``: the tenant whose
    portal host was requested (None on the console host); ``actor``: the acting user in that tenant (set
    only after access was checked; views and API operations behind the middleware can rely on it);
    ``auth_via``: "token" or "session".
    """

    tenant: Tenant | None
    portal_tenant: Tenant | None
    actor: Actor
    auth_via: str | None
