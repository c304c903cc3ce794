"""Per-request state of the console and portal shell: the viewer's time zone and the recent clients.

Both middlewares sit right after ``tenants.routing.TenantRoutingMiddleware`` (settings.MIDDLEWARE), so
they run inside the tenant's schema with ``request.tenant`` set and the user (session or API token)
known, for console and portal requests alike.
"""

from __future__ import annotations

import zoneinfo
from collections.abc import Callable
from urllib.parse import unquote

from django.http import HttpRequest, HttpResponse
from django.utils import timezone

from controlplane.zones import zone_valid

# Set by static/app.js from Intl.DateTimeFormat().resolvedOptions().timeZone (an IANA name, URI-encoded).
TZ_COOKIE = "tz"
RECENT_SESSION_KEY = "console_recent_tenants"
RECENT_MAX = 5


def viewer_zone_name(request: HttpRequest) -> str:
    """The IANA zone the request's pages show times in, first that is set and valid of:

    1. the signed-in user's ``User.time_zone`` (set on the console profile page);
    2. the ``tz`` cookie (the browser's own zone, written by app.js);
    3. the tenant's ``time_zone`` when the request is in a tenant (console ``/t/<slug>/`` or portal host);
    4. "UTC".
    """
    user = getattr(request, "user", None)
    if user is not None and user.is_authenticated:
        own = getattr(user, "time_zone", "")
        if zone_valid(own):
            return str(own)
    cookie = unquote(request.COOKIES.get(TZ_COOKIE, ""))[:64]
    if zone_valid(cookie):
        return cookie
    tenant = getattr(request, "tenant", None)
    if tenant is not None and zone_valid(getattr(tenant, "time_zone", "")):
        return str(tenant.time_zone)
    return "UTC"


class ViewerTimeZoneMiddleware:
    """Activate the viewer's zone (``viewer_zone_name``) for the request, so ``|date``, ``localtime``
    and the ``ui`` and ``sla`` tags show local times."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        name = viewer_zone_name(request)
        with timezone.override(zoneinfo.ZoneInfo(name)):
            return self.get_response(request)


def recent_tenant_ids(request: HttpRequest) -> list[int]:
    """Ids of the tenants this session entered last on the console, most recent first (at most 5).

    Only a hint for ordering: every reader filters them through the user's access again."""
    raw = request.session.get(RECENT_SESSION_KEY, []) if hasattr(request, "session") else []
    return [i for i in raw if isinstance(i, int)][:RECENT_MAX]


def recent_tenant_record(request: HttpRequest, tenant_id: int) -> None:
    """Put ``tenant_id`` first in the session's recent list. Writes the session only when the list
    changes, so staying in one client costs no query."""
    recent = recent_tenant_ids(request)
    updated = [tenant_id, *[i for i in recent if i != tenant_id]][:RECENT_MAX]
    if updated != recent:
        request.session[RECENT_SESSION_KEY] = updated


class RecentTenantsMiddleware:
    """Remember the client of each console page a signed-in technician opens (``/t/<slug>/...``; the
    routing middleware already checked access). Portal hosts and API tokens are not recorded."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        tenant = getattr(request, "tenant", None)
        if (
            tenant is not None
            and getattr(request, "portal_tenant", None) is None
            and getattr(request, "auth_via", None) == "session"
            and not request.path_info.startswith("/api/")
            and request.user.is_authenticated
        ):
            recent_tenant_record(request, tenant.pk)
        return self.get_response(request)
