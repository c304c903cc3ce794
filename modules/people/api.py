"""REST API for the tenant directory: /api/v1/t/{tenant}/people (pickers for callers and assignees)."""

import uuid
from typing import Any

from ninja import Router, Schema
from ninja.pagination import LimitOffsetPagination, paginate

from controlplane.api_auth import TenantSlug
from controlplane.http import TenantRequest
from controlplane.problems import InvalidInput, NotFound

from . import selectors, services

router = Router(tags=["people"])


class PersonOut(Schema):
    id: uuid.UUID
    display_name: str
    email: str
    manager_id: uuid.UUID | None


class PersonPatch(Schema):
    manager_id: uuid.UUID | None


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


@router.patch(
    "/{person_id}", response=PersonOut, summary="Set a person's manager (technicians, client admins)"
)
def patch_person(
    request: TenantRequest, tenant: TenantSlug, person_id: uuid.UUID, payload: PersonPatch
) -> Any:
    actor = request.actor
    person = selectors.person_get(actor=actor, person_id=person_id)
    manager = None
    if payload.manager_id is not None:
        try:
            manager = selectors.person_get(actor=actor, person_id=payload.manager_id)
        except NotFound as exc:
            raise InvalidInput(
                "manager_id: not found", errors=[{"field": "manager_id", "message": "not found"}]
            ) from exc
    return services.person_manager_set(actor=actor, person=person, manager=manager)
