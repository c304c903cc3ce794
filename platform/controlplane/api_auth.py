"""Authentication classes of the API. Token auth never reads the session; session auth checks CSRF
on unsafe methods (django-ninja views are CSRF-exempt otherwise)."""

from __future__ import annotations

from typing import Annotated, Any

from django.http import HttpRequest
from ninja import Path
from ninja.errors import HttpError
from ninja.security.base import AuthBase
from ninja.utils import check_csrf


class TenantActorAuth(AuthBase):
    """Passes when the routing middleware built an actor for this request."""

    openapi_type = "http"
    openapi_scheme = "bearer"

    def __call__(self, request: HttpRequest) -> Any:
        actor = getattr(request, "actor", None)
        if actor is None:
            return None
        unsafe = request.method not in ("GET", "HEAD", "OPTIONS")
        if getattr(request, "auth_via", None) == "session" and unsafe and check_csrf(request) is not None:
            raise HttpError(403, "CSRF check failed")
        return actor


class UserAuth(AuthBase):
    """Console-host endpoints outside a tenant (tokens): the signed-in session user, with CSRF."""

    openapi_type = "apiKey"
    openapi_in = "cookie"
    openapi_name = "sessionid"

    def __call__(self, request: HttpRequest) -> Any:
        if not request.user.is_authenticated or getattr(request, "auth_via", None) == "token":
            return None  # tokens are managed from a signed-in browser, never with a token
        if request.method not in ("GET", "HEAD", "OPTIONS") and check_csrf(request) is not None:
            raise HttpError(403, "CSRF check failed")
        return request.user


# The tenant slug of /api/v1/t/{tenant}/... (already resolved and checked by the routing middleware);
# declared on each tenant operation so the OpenAPI document names the path parameter.
TenantSlug = Annotated[str, Path(..., description="The tenant's slug", pattern=r"^[a-z0-9-]{1,40}$")]
