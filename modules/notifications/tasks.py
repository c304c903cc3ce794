"""Celery entry points for notifications. Tenant tasks run in the schema named in their message; each
takes an id and is safe to run twice (the services lock the row and send only what is pending)."""

from __future__ import annotations

from controlplane.celery import app, require_tenant, send_to_tenant

from . import services


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
def notification_deliver_due_task() -> int:
    """Enqueue this tenant's pending, due email and webhook deliveries (retries, lost enqueues)."""
    require_tenant()
    return services.notification_deliver_due()


@app.task(acks_late=True)
def notification_sweep_task() -> int:
    """Beat entry (public schema, every minute): enqueue ``notification_deliver_due_task`` once per
    active tenant, the tenant named explicitly in each message (tenant-schemas-celery #132). Returns how
    many tenants were enqueued."""
    from tenants.models import Tenant

    schemas = list(Tenant.objects.filter(status=Tenant.Status.ACTIVE).values_list("schema_name", flat=True))
    for schema_name in schemas:
        send_to_tenant(notification_deliver_due_task, schema_name=schema_name)
    return len(schemas)
