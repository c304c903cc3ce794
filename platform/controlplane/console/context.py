"""Template context for every console and portal page."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest
from django.utils.functional import SimpleLazyObject

from modules.records.actor import RolePermissions


def console(request: HttpRequest) -> dict[str, Any]:
    """``tenant`` (the tenant of this request, or None), ``portal`` (True on a portal host) and
    ``provider_can`` (the signed-in user's provider role as ``can.<PERMISSION>``, or None: the header
    shows the queue, dashboard and team links by it; read lazily, so a page that does not ask costs no
    query).

    The header's client switcher loads its list on demand (``/switch/``), so rendering a page costs no
    query for it."""
    return {
        "tenant": getattr(request, "tenant", None),
        "portal": getattr(request, "portal_tenant", None) is not None,
        "provider_can": SimpleLazyObject(lambda: _provider_can(request)),
    }


def _provider_can(request: HttpRequest) -> RolePermissions | None:
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return None
    membership = getattr(user, "provider_membership", None)  # RelatedObjectDoesNotExist is an AttributeError
    return RolePermissions(membership.role) if membership is not None else None
