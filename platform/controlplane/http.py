"""The request type tenant entry points see, once the routing middleware has run."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.http import HttpRequest

if TYPE_CHECKING:
    from controlplane.problems import DomainError
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


def request_actor(request: TenantRequest) -> Actor:
    """The actor of a tenant page. Raises Http404 when the routing middleware set none (a visitor who is
    not signed in, or has no role here), exactly as for a page that does not exist."""
    from django.http import Http404

    actor = getattr(request, "actor", None)
    if actor is None:
        raise Http404("sign in first")
    return actor


def form_errors_apply(form: Any, exc: DomainError, *, aliases: dict[str, str] | None = None) -> None:
    """Show a domain error on a Django form: each ``{"field", "message"}`` of ``exc.extra["errors"]`` goes
    next to the form field it names (``aliases`` maps service names to form names, e.g. ``template_id``
    -> ``template``); a nested name such as ``attributes.cpu_count`` goes to ``attributes`` led by its
    name; anything else goes to the whole form, led by its name. Without field errors, the detail."""
    errors = exc.extra.get("errors") or [{"field": None, "message": exc.detail}]
    for error in errors:
        field = error.get("field") or ""
        name = (aliases or {}).get(field, field)
        if name in form.fields:
            form.add_error(name, error["message"])
            continue
        parent = name.split(".")[0]
        target = parent if parent in form.fields else None
        form.add_error(target, f"{field}: {error['message']}" if field else error["message"])
