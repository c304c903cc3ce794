"""``{% portal_branding as brand %}``: the branding of the request's portal tenant (one query per request,
cached on the request), or None off a portal host."""

from __future__ import annotations

from typing import Any

from django import template

from tenants.models import TenantBranding
from tenants.selectors import branding_get

register = template.Library()


@register.simple_tag(takes_context=True)
def portal_branding(context: dict[str, Any]) -> TenantBranding | None:
    request = context.get("request")
    tenant = getattr(request, "portal_tenant", None) or context.get("tenant")
    if request is None or tenant is None:
        return None
    cached: TenantBranding | None = getattr(request, "_portal_branding", None)
    if cached is None or cached.tenant_id != tenant.pk:
        cached = branding_get(tenant=tenant)
        request._portal_branding = cached
    return cached
