"""Celery entry points of the SLA engine.

``sla_escalation_sweep_task`` runs from beat every 60 s in the public schema: it reads what is due from
the cross-client work index (one indexed query, never a loop over schemas) and sends the record ids in
batches that name each id's tenant. ``sla_escalate_batch_task`` escalates each group inside its tenant;
each record is its own transaction, and every level runs once however often a message is delivered
(services.sla_escalate).
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from typing import Any

from django.utils import timezone
from django_tenants.utils import tenant_context

from controlplane.celery import app, require_tenant
from controlplane.workindex.selectors import workindex_escalations_due

from . import services

BATCH = 1000  # record ids per message, across tenants
SWEEP_LIMIT = 50_000  # due records read per tick; the rest are read on the next tick

log = logging.getLogger(__name__)


def sla_escalation_sweep(*, now: dt.datetime) -> int:
    """One sweep tick (public schema): read every record whose ``next_escalation_at`` (UTC) is at or
    before ``now`` from the cross-client work index (one query on its partial index, never a loop over
    schemas) and send them in messages of at most ``BATCH`` record ids, each message naming the tenant
    schema of every id (``sla_escalate_batch_task``). Returns how many messages were sent.

    Packing tenants together keeps a tick at a few messages when many tenants have a little due (1 % of
    1,000 x 1,000 records is 10 messages, not 1,000). Sending the same ids twice (a second scheduler, a
    backlog) is harmless: each level of each record runs once (services.sla_escalate)."""
    return escalation_batches_send(workindex_escalations_due(now=now, limit=SWEEP_LIMIT))


def escalation_batches_send(groups: dict[tuple[str, str], list[str]]) -> int:
    """Send ``groups`` ((schema name, record type) -> record ids) as ``sla_escalate_batch_task`` messages
    of at most ``BATCH`` ids each, tenants packed together. Returns how many messages were sent."""
    batch: list[list[Any]] = []
    size = sent = 0
    for (schema_name, record_type), ids in groups.items():
        for index in range(0, len(ids), BATCH):
            part = ids[index : index + BATCH]
            if size + len(part) > BATCH:
                _send(batch, size)
                batch, size, sent = [], 0, sent + 1
            batch.append([schema_name, record_type, part])
            size += len(part)
    if batch:
        _send(batch, size)
        sent += 1
    return sent


def _send(batch: list[list[Any]], size: int) -> None:
    # A short kwargsrepr: Celery would otherwise pretty-print every id into the message headers.
    sla_escalate_batch_task.apply_async(
        kwargs={"batch": batch}, argsrepr="()", kwargsrepr=f"{{batch: {size} records, {len(batch)} groups}}"
    )


@app.task(acks_late=True)
def sla_escalation_sweep_task() -> int:
    """Beat entry (public, every 60 s): one sweep tick (``sla_escalation_sweep``). Returns messages sent."""
    return sla_escalation_sweep(now=timezone.now())


@app.task(acks_late=True)
def sla_escalate_batch_task(*, batch: list[list[Any]]) -> int:
    """Public task: ``batch`` is ``[[schema_name, record_type, [record id, ...]], ...]``; each group is
    escalated inside its own tenant (``tenant_context``; the schema is named in the message, never taken
    from the connection, tenant-schemas-celery #132). A tenant that is gone or suspended is skipped; an
    error in one tenant is logged and the others still run (its records stay due in the index, so the
    next tick sends them again). Returns how many levels ran."""
    from tenants.models import Tenant

    schemas = {schema for schema, _, _ in batch}
    tenants = {
        t.schema_name: t for t in Tenant.objects.filter(schema_name__in=schemas, status=Tenant.Status.ACTIVE)
    }
    ran = 0
    for schema_name, record_type, ids in batch:
        tenant = tenants.get(schema_name)
        if tenant is None:
            continue
        try:
            with tenant_context(tenant):
                ran += services.sla_escalate(record_type=record_type, record_ids=[uuid.UUID(i) for i in ids])
        except Exception:
            log.exception("escalation failed in %s for %d %s records", schema_name, len(ids), record_type)
    return ran


@app.task(acks_late=True)
def sla_recompute_task() -> int:
    """Tenant task: recompute the timers of every open record after a change of calendars, contracts or
    policies. Safe to run twice (the same history gives the same timers)."""
    require_tenant()
    return services.sla_refresh_open()
