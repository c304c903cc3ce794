"""Celery entry points of the SLA engine.

``sla_escalation_sweep_task`` runs from beat every 60 s in the public schema: it reads what is due from
the cross-client work index (one indexed query, never a loop over schemas) and sends each tenant its
record ids in chunks. ``sla_escalate_task`` runs in that tenant and escalates each record in its own
transaction; every level runs once however often a message is delivered (services.sla_escalate).
"""

from __future__ import annotations

import uuid
from collections import defaultdict

from django.utils import timezone

from controlplane.celery import app, require_tenant, send_to_tenant
from controlplane.workindex.selectors import workindex_escalations_due

from . import services

CHUNK = 500  # record ids per tenant message
SWEEP_LIMIT = 50_000  # due records read per tick; the rest are read on the next tick


@app.task(acks_late=True)
def sla_escalation_sweep_task() -> int:
    """Beat entry (public): send ``sla_escalate_task`` for every record whose ``next_escalation_at`` has
    passed, grouped by tenant and record type, at most ``CHUNK`` ids a message. Returns how many
    messages were sent. A second scheduler sending the same ids is harmless: escalation is idempotent."""
    due = workindex_escalations_due(now=timezone.now(), limit=SWEEP_LIMIT)
    groups: dict[tuple[str, str], list[str]] = defaultdict(list)
    for row in due:
        groups[(row.schema_name, row.record_type)].append(str(row.record_id))
    sent = 0
    for (schema_name, record_type), ids in groups.items():
        for index in range(0, len(ids), CHUNK):
            send_to_tenant(
                sla_escalate_task,
                schema_name=schema_name,
                record_type=record_type,
                record_ids=ids[index : index + CHUNK],
            )
            sent += 1
    return sent


@app.task(acks_late=True)
def sla_escalate_task(*, record_type: str, record_ids: list[str]) -> int:
    """Tenant task: run the due escalation levels of these records (each record one transaction).
    Returns how many levels ran (0 on a redelivery of work already done)."""
    require_tenant()
    return services.sla_escalate(record_type=record_type, record_ids=[uuid.UUID(i) for i in record_ids])


@app.task(acks_late=True)
def sla_recompute_task() -> int:
    """Tenant task: recompute the timers of every open record after a change of calendars, contracts or
    policies. Safe to run twice (the same history gives the same timers)."""
    require_tenant()
    return services.sla_refresh_open()
