"""Template context for every console and portal page."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest


def console(request: HttpRequest) -> dict[str, Any]:
    """``tenant`` (the tenant of this request, or None), ``portal`` (True on a portal host) and
    ``my_tenants`` (lazy: the tenants the signed-in user may switch to)."""
    tenant = getattr(request, "tenant", None)
    context: dict[str, Any] = {
        "tenant": tenant,
        "portal": getattr(request, "portal_tenant", None) is not None,
    }
    user = getattr(request, "user", None)
    if user is not None and user.is_authenticated and not context["portal"]:
        from controlplane.accounts.selectors import tenant_list_for_user

        context["my_tenants"] = lambda: list(tenant_list_for_user(user=user))
    return context
