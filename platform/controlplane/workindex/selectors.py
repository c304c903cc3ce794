"""Reads of the cross-client work index (control plane). Sweeps read here instead of looping over schemas."""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass

from .models import WorkItem


@dataclass(frozen=True)
class DueEscalation:
    """An open record whose next SLA escalation is due: its tenant's schema, record type and id."""

    schema_name: str
    record_type: str
    record_id: uuid.UUID


def workindex_escalations_due(*, now: dt.datetime, limit: int) -> list[DueEscalation]:
    """Records of active tenants whose ``next_escalation_at`` (UTC) is at or before ``now``, earliest
    first, at most ``limit``. Reads the partial index ``work_escalation_due`` (rows with a due time only),
    so a tick where nothing is due reads no row of the index's complement; one query for all tenants."""
    from tenants.models import Tenant

    rows = (
        WorkItem.objects.filter(
            next_escalation_at__isnull=False,
            next_escalation_at__lte=now,
            tenant__status=Tenant.Status.ACTIVE,
        )
        .order_by("next_escalation_at", "id")
        .values_list("tenant__schema_name", "record_type", "record_id")[:limit]
    )
    return [DueEscalation(schema, record_type, record_id) for schema, record_type, record_id in rows]
