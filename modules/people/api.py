"""REST API for the tenant directory: /api/v1/t/{tenant}/people (pickers for callers and assignees)."""

import uuid
from typing import Any

from ninja import Router, Schema
from ninja.pagination import LimitOffsetPagination, paginate

from controlplane.api_auth import TenantSlug
from controlplane.http import TenantRequest

from . import selectors

router = Router(tags=["people"])


class PersonOut(Schema):
    id: uuid.UUID
    display_name: str
    email: str


class GroupOut(Schema):
    id: uuid.UUID
    name: str


@router.get("/", response=list[PersonOut], summary="People in this tenant's directory")
@paginate(LimitOffsetPagination)
def list_people(request: TenantRequest, tenant: TenantSlug, q: str = "") -> Any:
    return selectors.person_list(actor=request.actor, q=q)


@router.get("/groups", response=list[GroupOut], summary="Assignment groups")
def list_groups(request: TenantRequest, tenant: TenantSlug) -> Any:
    return selectors.group_list(actor=request.actor)
