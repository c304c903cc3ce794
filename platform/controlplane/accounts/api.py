"""/api/v1/me: the signed-in user's own API tokens (session auth on the console host)."""

import datetime as dt
from typing import Any

from django.http import HttpRequest
from ninja import Field, Router, Schema, Status

from controlplane.api_auth import UserAuth

from . import services
from .models import ApiToken, User

router = Router(tags=["me"], auth=UserAuth())


def _user(request: HttpRequest) -> User:
    user = request.auth  # type: ignore[attr-defined]
    assert isinstance(user, User)
    return user


class TokenIn(Schema):
    name: str = Field(..., min_length=1, max_length=100)
    expires_in_days: int | None = Field(None, ge=1, le=3650)


class TokenOut(Schema):
    id: int
    name: str
    prefix: str
    created_at: dt.datetime
    expires_at: dt.datetime | None
    last_used_at: dt.datetime | None


class TokenCreated(TokenOut):
    token: str = Field(..., description="The secret; shown only in this response.")


@router.get("/tokens", response=list[TokenOut], summary="My active API tokens")
def list_tokens(request: HttpRequest) -> Any:
    return ApiToken.objects.filter(user=_user(request), revoked_at__isnull=True).order_by("-created_at")


@router.post("/tokens", response={201: TokenCreated}, summary="Create an API token")
def create_token(request: HttpRequest, payload: TokenIn) -> Any:
    token, secret = services.api_token_create(
        user=_user(request), name=payload.name, expires_in_days=payload.expires_in_days
    )
    return Status(201, {**TokenOut.from_orm(token).dict(), "token": secret})


@router.delete("/tokens/{token_id}", response={204: None}, summary="Revoke an API token")
def revoke_token(request: HttpRequest, token_id: int) -> Any:
    services.api_token_revoke(user=_user(request), token_id=token_id)
    return Status(204, None)
