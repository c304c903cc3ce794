"""Email in, reads: a tenant's inbound addresses and its messages, for the provider's staff (actor
given); and every tenant's problem messages for the operator's management command."""

from __future__ import annotations

from collections.abc import Iterable

from django.db.models import QuerySet

from controlplane.permissions import P
from controlplane.problems import NotFound, PermissionDenied
from modules.records.actor import Actor
from tenants.models import Tenant

from .models import InboundAddress, InboundMessage


def _require_staff(actor: Actor) -> None:
    if not actor.may(P.MAILBOX_MANAGE):
        raise PermissionDenied("only the provider's technicians and admins see inbound email settings")


def inbound_address_list(*, actor: Actor, tenant: Tenant) -> QuerySet[InboundAddress]:
    """The tenant's inbound addresses with their mailboxes, by address. PermissionDenied for non-staff."""
    _require_staff(actor)
    return InboundAddress.objects.filter(tenant=tenant).select_related("mailbox").order_by("address")


def inbound_address_get(*, actor: Actor, tenant: Tenant, address_id: int) -> InboundAddress:
    """One inbound address of ``tenant``. NotFound for another tenant's id exactly as for a missing one."""
    _require_staff(actor)
    row = InboundAddress.objects.filter(tenant=tenant, pk=address_id).select_related("tenant").first()
    if row is None:
        raise NotFound("no such inbound address")
    return row


def inbound_message_list(
    *, actor: Actor, tenant: Tenant, statuses: Iterable[str] = (), limit: int = 50
) -> QuerySet[InboundMessage]:
    """The tenant's received messages, newest first, optionally of ``statuses`` (e.g. failed, ignored),
    at most ``limit`` (1-200). The raw bytes are not loaded. PermissionDenied for non-staff."""
    _require_staff(actor)
    qs = InboundMessage.objects.filter(tenant=tenant).defer("raw")
    wanted = list(statuses)
    if wanted:
        qs = qs.filter(status__in=wanted)
    return qs.order_by("-received_at", "-id")[: max(1, min(limit, 200))]


def inbound_message_problems(
    *, statuses: Iterable[str], tenant_slug: str | None = None, limit: int = 100
) -> QuerySet[InboundMessage]:
    """Every tenant's messages of ``statuses`` (those without a tenant too), newest first: the
    operator's view (``manage.py mail_messages``), not reachable over HTTP."""
    qs = InboundMessage.objects.filter(status__in=list(statuses)).select_related("tenant").defer("raw")
    if tenant_slug:
        qs = qs.filter(tenant__slug=tenant_slug)
    return qs.order_by("-received_at", "-id")[:limit]
