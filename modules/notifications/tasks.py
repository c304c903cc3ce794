"""Celery entry points for notifications. Tenant tasks run in the schema named in their message; each
takes an id and is safe to run twice (the services lock the row and send only what is pending)."""

from __future__ import annotations

import datetime as dt

from django.utils import timezone

from controlplane.celery import app, require_tenant, send_to_tenant
from controlplane.workindex.selectors import workindex_wakeups_due

from . import services

SWEEP_LIMIT = 10_000  # tenants woken per tick; the rest (still due) on the next tick


@app.task(acks_late=True)
def email_delivery_send_task(*, delivery_id: int) -> bool:
    """Send one email delivery if it is still pending and due. Returns True when this run sent it."""
    require_tenant()
    return services.email_delivery_send(delivery_id=delivery_id)


@app.task(acks_late=True)
def webhook_delivery_send_task(*, delivery_id: str) -> str:
    """Make one attempt of a webhook delivery if it is still pending and due. Returns its state."""
    require_tenant()
    return services.webhook_delivery_attempt(delivery_id=delivery_id)


@app.task(acks_late=True)
def notification_deliver_due_task(*, now: str | None = None) -> int:
    """Enqueue this tenant's pending, due email and webhook deliveries (retries, lost enqueues) and move
    its wake-up to the next due time. ``now``: ISO 8601 UTC (default: the current time)."""
    require_tenant()
    return services.notification_deliver_due(now=_parse(now))


@app.task(acks_late=True)
def notification_sweep_task(*, now: str | None = None) -> int:
    """Beat entry (public schema, every minute): send ``notification_deliver_due_task`` to each active
    tenant whose notifications wake-up is due (``TenantWakeup.due_at`` <= ``now``; ISO 8601 UTC, default
    the current time), naming its schema explicitly (tenant-schemas-celery #132). One indexed query on
    the control plane: tenants with nothing pending have no wake-up and get no task. A second scheduler
    sending the same tenants is harmless (the tenant task is idempotent). Returns how many were sent."""
    schemas = workindex_wakeups_due(
        kind=services.WAKEUP_KIND, now=_parse(now) or timezone.now(), limit=SWEEP_LIMIT
    )
    for schema_name in schemas:
        send_to_tenant(notification_deliver_due_task, schema_name=schema_name)
    return len(schemas)


def _parse(value: str | None) -> dt.datetime | None:
    return dt.datetime.fromisoformat(value) if value else None
