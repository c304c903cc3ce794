"""Writes to the cross-client work index. Called by tenant-plane services inside their own transaction,
so the index commits or rolls back with the record (../shared/ARCHITECTURE.md).

The tenant is the connection's current tenant (set by the routing middleware, ``tenant_context`` or
tenant-schemas-celery), never an argument a caller could get wrong.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass

from django.db import connection
from django.utils import timezone

from .models import WorkItem


class NoTenant(RuntimeError):
    """A work index write ran outside a tenant (in public or the template schema)."""


@dataclass(frozen=True)
class WorkEntry:
    """What the index keeps of one record. ``title`` is cut to 160 characters; persons and groups are
    tenant-local ids; ``assigned_user_id`` is the assignee person's control-plane user id, if any."""

    record_type: str
    record_id: uuid.UUID
    number: str
    title: str
    state: str
    is_open: bool
    opened_at: dt.datetime
    priority: int | None = None
    assigned_person_id: uuid.UUID | None = None
    assigned_user_id: int | None = None
    assignment_group_id: uuid.UUID | None = None


def current_tenant_ids() -> tuple[int, int]:
    """(tenant id, provider id) of the connection's tenant. Raises NoTenant in public or the template."""
    tenant = getattr(connection, "tenant", None)
    if (
        tenant is None
        or getattr(tenant, "pk", None) is None
        or getattr(connection, "schema_name", "public") == "public"
    ):
        raise NoTenant("work index writes need a tenant")
    return tenant.pk, tenant.provider_id


def workindex_upsert(*, entry: WorkEntry) -> None:
    """Write the record's row (open) or delete it (no longer open). SLA columns are left as they are;
    ``modules.sla`` sets them with ``workindex_sla_set`` after it recomputes the record's timers."""
    tenant_id, provider_id = current_tenant_ids()
    if not entry.is_open:
        WorkItem.objects.filter(record_id=entry.record_id).delete()
        return
    WorkItem.objects.update_or_create(
        record_id=entry.record_id,
        defaults={
            "tenant_id": tenant_id,
            "provider_id": provider_id,
            "record_type": entry.record_type,
            "number": entry.number,
            "title": entry.title[:160],
            "state": entry.state,
            "priority": entry.priority,
            "assigned_person_id": entry.assigned_person_id,
            "assigned_user_id": entry.assigned_user_id,
            "assignment_group_id": entry.assignment_group_id,
            "opened_at": entry.opened_at,
            "updated_at": timezone.now(),
        },
    )


def workindex_sla_set(
    *,
    record_id: uuid.UUID,
    response_due_at: dt.datetime | None,
    resolution_due_at: dt.datetime | None,
    sla_paused: bool,
    breached: bool,
    next_escalation_at: dt.datetime | None,
) -> bool:
    """Set the SLA columns of an open record's row (UTC datetimes). ``sla_due_at`` is the earlier of the
    two deadlines. Returns False when the record has no row (it is not open): nothing is written."""
    current_tenant_ids()
    dues = [d for d in (response_due_at, resolution_due_at) if d is not None]
    updated = WorkItem.objects.filter(record_id=record_id).update(
        response_due_at=response_due_at,
        resolution_due_at=resolution_due_at,
        sla_due_at=min(dues) if dues else None,
        sla_paused=sla_paused,
        breached=breached,
        next_escalation_at=next_escalation_at,
    )
    return updated > 0
