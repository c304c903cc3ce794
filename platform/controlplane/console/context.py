"""Template context for every console and portal page."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest


def console(request: HttpRequest) -> dict[str, Any]:
    """``tenant`` (the tenant of this request, or None) and ``portal`` (True on a portal host).

    The header's client switcher loads its list on demand (``/switch/``), so rendering a page costs no
    query for it."""
    return {
        "tenant": getattr(request, "tenant", None),
        "portal": getattr(request, "portal_tenant", None) is not None,
    }
