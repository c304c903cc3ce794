"""Reads of the catalog and of service requests, always scoped to what the actor may see.

- The catalog: technicians and admins see every category and item; everyone else sees active items.
- Requests: technicians see every request of the tenant they entered, client admins every request of
  their organisation (the tenant); everyone else sees the requests
  they are requested for or opened, and the requests where an approval is waiting for them (or was
  decided by them), as on ServiceNow's portal ("My requests", "My approvals").
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterable
from typing import Any

from django.core.exceptions import ValidationError
from django.db.models import Exists, OuterRef, Prefetch, Q, QuerySet

from controlplane.permissions import P
from controlplane.problems import NotFound
from modules.records.actor import Actor

from .models import (
    Approval,
    ApprovalStepDefinition,
    CatalogCategory,
    CatalogItem,
    FulfilmentTask,
    RequestedItem,
    ServiceRequest,
)

MISSING = (ValidationError, ValueError, TypeError)


def _catalog_admin(actor: Actor) -> bool:
    return actor.may(P.CATALOG_MANAGE)


def catalog_category_list(*, actor: Actor) -> QuerySet[CatalogCategory]:
    """Categories by ``order`` then name. Everyone sees every category (they are headings only)."""
    return CatalogCategory.objects.all()


def catalog_category_get(*, actor: Actor, category_id: uuid.UUID | str) -> CatalogCategory:
    """One category. Raises NotFound for a missing or malformed id."""
    try:
        return CatalogCategory.objects.get(pk=category_id)
    except (CatalogCategory.DoesNotExist, *MISSING) as exc:
        raise NotFound("no such catalog category") from exc


def catalog_item_visible(*, actor: Actor) -> QuerySet[CatalogItem]:
    qs = CatalogItem.objects.select_related("category", "fulfilment_group").prefetch_related(
        Prefetch(
            "approval_steps",
            queryset=ApprovalStepDefinition.objects.select_related("approver_person", "approver_group"),
        )
    )
    return qs if _catalog_admin(actor) else qs.filter(active=True)


def catalog_item_list(
    *,
    actor: Actor,
    category: uuid.UUID | None = None,
    q: str = "",
    include_inactive: bool = False,
) -> QuerySet[CatalogItem]:
    """Catalog items by name. End users see active items only; technicians and admins see inactive ones
    too when ``include_inactive``. ``q`` matches words of the name or short description."""
    qs = catalog_item_visible(actor=actor)
    if not include_inactive:
        qs = qs.filter(active=True)
    if category:
        qs = qs.filter(category_id=category)
    if q.strip():
        qs = qs.filter(Q(name__icontains=q.strip()) | Q(short_description__icontains=q.strip()))
    return qs


def catalog_item_get(*, actor: Actor, catalog_item_id: uuid.UUID | str) -> CatalogItem:
    """One catalog item the actor may see. Raises NotFound for a missing, inactive (to end users) or
    malformed id alike."""
    try:
        return catalog_item_visible(actor=actor).get(pk=catalog_item_id)
    except (CatalogItem.DoesNotExist, *MISSING) as exc:
        raise NotFound("no such catalog item") from exc


def _approval_waits_for(actor: Actor) -> Q:
    """Approvals the actor decides: theirs by person, or a tenant-role step of the actor's role."""
    mine = Q(approver_id=actor.person_id) if actor.person_id else Q(pk__in=[])
    return mine | Q(approver__isnull=True, approver_role=actor.role)


def service_request_visible(*, actor: Actor) -> QuerySet[ServiceRequest]:
    qs = ServiceRequest.objects.select_related("requested_for", "opened_by")
    if actor.may(P.ORGANISATION_READ):  # client admins see their organisation's
        return qs
    approvals = Approval.objects.filter(_approval_waits_for(actor), request=OuterRef("pk")).exclude(
        state=Approval.State.NOT_REQUESTED
    )
    decided = Approval.objects.filter(request=OuterRef("pk"), decided_by_id=actor.person_id)
    own = Q(requested_for_id=actor.person_id) | Q(opened_by_id=actor.person_id)
    return qs.filter(own | Exists(approvals) | Exists(decided)) if actor.person_id else qs.none()


def service_request_list(
    *,
    actor: Actor,
    state: Iterable[str] | None = None,
    requested_for: uuid.UUID | None = None,
    open_only: bool = False,
    q: str = "",
    opened_after: dt.datetime | None = None,
    opened_before: dt.datetime | None = None,
    own_only: bool = False,
) -> QuerySet[ServiceRequest]:
    """Requests the actor may see, filtered. ``q`` matches the number (exact, case-insensitive) or words
    of the short description; ``own_only`` keeps the actor's own (requested for or opened by them, not
    those they only approve or see as client admin). Unordered; callers order (pagination does)."""
    qs = service_request_visible(actor=actor)
    if own_only:
        qs = qs.filter(Q(requested_for_id=actor.person_id) | Q(opened_by_id=actor.person_id))
    if state:
        qs = qs.filter(state__in=list(state))
    if open_only:
        qs = qs.exclude(state__in=ServiceRequest.FINAL_STATES)
    if requested_for:
        qs = qs.filter(requested_for_id=requested_for)
    if opened_after:
        qs = qs.filter(opened_at__gte=opened_after)
    if opened_before:
        qs = qs.filter(opened_at__lt=opened_before)
    if q.strip():
        qs = qs.filter(Q(number__iexact=q.strip()) | Q(short_description__icontains=q.strip()))
    return qs


def service_request_get(*, actor: Actor, service_request_id: uuid.UUID | str) -> ServiceRequest:
    """One request the actor may see. Raises NotFound for a missing, invisible or malformed id alike
    (other tenants' ids answer as missing ones)."""
    try:
        return service_request_visible(actor=actor).get(pk=service_request_id)
    except (ServiceRequest.DoesNotExist, *MISSING) as exc:
        raise NotFound("no such service request") from exc


def service_request_get_by_number(*, actor: Actor, number: str) -> ServiceRequest:
    try:
        return service_request_visible(actor=actor).get(number=number)
    except ServiceRequest.DoesNotExist as exc:
        raise NotFound("no such service request") from exc


def requested_item_list(*, actor: Actor, request: ServiceRequest) -> QuerySet[RequestedItem]:
    """The items of a request the caller fetched through ``service_request_get`` (access checked)."""
    return RequestedItem.objects.filter(request=request).select_related("catalog_item")


def approval_list(*, actor: Actor, request: ServiceRequest) -> QuerySet[Approval]:
    """The approvals of a request (access checked by the caller), in step order."""
    return Approval.objects.filter(request=request).select_related(
        "approver", "delegated_from", "decided_by", "via_group", "requested_item"
    )


def approval_list_for(*, actor: Actor) -> QuerySet[Approval]:
    """Approvals waiting for the actor's decision (state pending), oldest first: theirs by person, or
    steps of their tenant role. Technicians get theirs too; nobody gets anyone else's."""
    return (
        Approval.objects.filter(_approval_waits_for(actor), state=Approval.State.PENDING)
        .select_related("approver", "request", "request__requested_for", "requested_item__catalog_item")
        .order_by("created_at", "id")
    )


def approval_decided_list(*, actor: Actor) -> QuerySet[Approval]:
    """Approvals the actor decided (approved or rejected), latest decision first, with their request and
    item loaded. Nobody gets anyone else's."""
    if actor.person_id is None:
        return Approval.objects.none()
    return (
        Approval.objects.filter(
            decided_by_id=actor.person_id, state__in=(Approval.State.APPROVED, Approval.State.REJECTED)
        )
        .select_related("approver", "request", "request__requested_for", "requested_item__catalog_item")
        .order_by("-decided_at", "-id")
    )


def approval_get_mine(*, actor: Actor, approval_id: uuid.UUID | str) -> Approval:
    """One approval that is the actor's to decide (waiting for them by person, delegation or tenant role)
    or that they decided. Raises NotFound for any other (another person's approval answers as a missing
    id: the portal's approvals page shows the actor's own only). No access rule of the request applies
    beyond this: being its approver is what lets the actor see it."""
    decided = Q(decided_by_id=actor.person_id) if actor.person_id else Q(pk__in=[])
    try:
        return (
            Approval.objects.filter(_approval_waits_for(actor) | decided)
            .exclude(state=Approval.State.NOT_REQUESTED)
            .select_related("approver", "request", "request__requested_for", "requested_item__catalog_item")
            .get(pk=approval_id)
        )
    except (Approval.DoesNotExist, *MISSING) as exc:
        raise NotFound("no such approval") from exc


def approval_get(*, actor: Actor, approval_id: uuid.UUID | str) -> Approval:
    """One approval of a request the actor may see. Raises NotFound otherwise (missing, malformed, or on
    a request the actor cannot see)."""
    try:
        approval = Approval.objects.select_related("approver", "request").get(pk=approval_id)
    except (Approval.DoesNotExist, *MISSING) as exc:
        raise NotFound("no such approval") from exc
    service_request_get(actor=actor, service_request_id=approval.request_id)
    return approval


def task_list(
    *,
    actor: Actor,
    request: ServiceRequest | None = None,
    assignment_group: uuid.UUID | None = None,
    open_only: bool = False,
) -> QuerySet[FulfilmentTask]:
    """Fulfilment tasks: of one request (access checked by the caller), or, for technicians, the
    tenant's task queue filtered by assignment group. End users get only their request's tasks."""
    qs = FulfilmentTask.objects.select_related(
        "requested_item", "requested_item__request", "assignment_group", "assigned_to"
    )
    if request is not None:
        qs = qs.filter(requested_item__request=request)
    elif not actor.is_technician:
        return qs.none()
    if assignment_group:
        qs = qs.filter(assignment_group_id=assignment_group)
    if open_only:
        qs = qs.filter(state__in=FulfilmentTask.OPEN_STATES)
    return qs


def task_get(*, actor: Actor, task_id: uuid.UUID | str) -> FulfilmentTask:
    """One fulfilment task of a request the actor may see. Raises NotFound otherwise."""
    try:
        task = FulfilmentTask.objects.select_related(
            "requested_item", "requested_item__request", "assignment_group", "assigned_to"
        ).get(pk=task_id)
    except (FulfilmentTask.DoesNotExist, *MISSING) as exc:
        raise NotFound("no such task") from exc
    service_request_get(actor=actor, service_request_id=task.requested_item.request_id)
    return task


def request_summary(*, actor: Actor, request: ServiceRequest) -> dict[str, Any]:
    """Items, approvals and tasks of one request (access checked by the caller) for the detail page."""
    items = list(requested_item_list(actor=actor, request=request))
    tasks = list(task_list(actor=actor, request=request))
    return {
        "items": items,
        "approvals": list(approval_list(actor=actor, request=request)),
        "tasks": tasks,
    }
