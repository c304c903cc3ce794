"""The request type tenant entry points see, once the routing middleware has run."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from functools import wraps
from typing import TYPE_CHECKING, Any

from django.contrib.auth.views import redirect_to_login
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils.cache import patch_vary_headers
from django_htmx.middleware import HtmxDetails

if TYPE_CHECKING:
    from controlplane.accounts.models import ApiToken
    from controlplane.problems import DomainError
    from modules.records.actor import Actor
    from tenants.models import Tenant


class TenantRequest(HttpRequest):
    """An HttpRequest with what ``tenants.routing.TenantRoutingMiddleware`` sets on it.

    ``tenant``: the tenant this request runs in (None on public pages); ``portal_tenant``: the tenant whose
    portal host was requested (None on the console host); ``actor``: the acting user in that tenant (set
    only after access was checked; views and API operations behind the middleware can rely on it);
    ``auth_via``: "token" or "session"; ``api_token``: the personal API token of a token request; ``htmx``: django-htmx's request details (``HtmxMiddleware``).
    """

    tenant: Tenant | None
    portal_tenant: Tenant | None
    actor: Actor
    auth_via: str | None
    api_token: ApiToken | None
    htmx: HtmxDetails


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


def htmx_render(
    request: Any, *, full: str, partial: str, context: Mapping[str, Any], status: int = 200
) -> HttpResponse:
    """Render ``partial`` for an htmx request (django-htmx's ``request.htmx``) and ``full`` otherwise,
    including for htmx's history restore, which needs the whole page. Varies on ``HX-Request`` so a
    cache never serves one for the other."""
    htmx = request.htmx and not request.htmx.history_restore_request
    response = render(request, partial if htmx else full, dict(context), status=status)
    patch_vary_headers(response, ["HX-Request"])
    return response


def portal_page(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """Serve a portal ``view`` only to a user with a role in this tenant (``request.actor`` set by the
    routing middleware): visitors are sent to sign in and back (``LOGIN_URL``, the full path as ``next``);
    a signed-in user without a role here gets 403 with a way to sign out (sending them to sign in would
    loop: allauth sends signed-in users home)."""

    @wraps(view)
    def wrapped(request: TenantRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if getattr(request, "actor", None) is None:
            if request.user.is_authenticated:
                return render(request, "incidents/portal_no_access.html", status=403)
            return redirect_to_login(request.get_full_path())
        return view(request, *args, **kwargs)

    return wrapped
