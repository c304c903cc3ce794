"""/api/v1/me: the signed-in user's own API tokens (session auth on the console host)."""

import datetime as dt
from typing import Any

from django.http import HttpRequest
from ninja import Field, Router, Schema, Status

from controlplane.api_auth import UserAuth
from tenants.models import Tenant

from . import services
from .models import ApiToken, User

router = Router(tags=["me"], auth=UserAuth())


def _user(request: HttpRequest) -> User:
    user = request.auth  # type: ignore[attr-defined]
    assert isinstance(user, User)
    return user


class TokenIn(Schema):
    name: str = Field(..., min_length=1, max_length=100)
    expires_in_days: int = Field(90, ge=1, le=services.TOKEN_MAX_DAYS, description="1-366 days")
    access: ApiToken.Access = Field(ApiToken.Access.READ, description="read (GET only) or write")
    tenants: list[str] | None = Field(
        None, description="Slugs of the clients it may reach; null: every client you may enter"
    )


class TokenOut(Schema):
    id: int
    name: str
    prefix: str
    access: str
    all_tenants: bool
    tenant_ids: list[int]
    created_at: dt.datetime
    expires_at: dt.datetime | None
    last_used_at: dt.datetime | None
    last_used_ip: str | None


class TokenCreated(TokenOut):
    token: str = Field(..., description="The secret; shown only in this response.")


@router.get("/tokens", response=list[TokenOut], summary="My active API tokens")
def list_tokens(request: HttpRequest) -> Any:
    return ApiToken.objects.filter(user=_user(request), revoked_at__isnull=True).order_by("-created_at")


@router.post("/tokens", response={201: TokenCreated}, summary="Create an API token")
def create_token(request: HttpRequest, payload: TokenIn) -> Any:
    tenant_ids = None
    if payload.tenants is not None:
        found = dict(Tenant.objects.filter(slug__in=payload.tenants).values_list("slug", "pk"))
        tenant_ids = [found.get(slug, 0) for slug in payload.tenants]  # 0: no such client, refused below
    token, secret = services.api_token_create(
        user=_user(request),
        name=payload.name,
        expires_in_days=payload.expires_in_days,
        access=payload.access,
        tenant_ids=tenant_ids,
        ip=services.client_ip(request),
    )
    return Status(201, {**TokenOut.from_orm(token).dict(), "token": secret})


@router.delete("/tokens/{token_id}", response={204: None}, summary="Revoke an API token")
def revoke_token(request: HttpRequest, token_id: int) -> Any:
    services.api_token_revoke(user=_user(request), token_id=token_id, ip=services.client_ip(request))
    return Status(204, None)
