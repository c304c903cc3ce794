"""Celery entry points of monitoring. Tenant tasks run in the schema named in their message."""

from __future__ import annotations

from django.utils import timezone

from controlplane.celery import app, require_tenant, send_to_tenant

from . import metrics


@app.task(acks_late=True)
def metrics_expire_task() -> list[int]:
    """Tenant task: delete this tenant's raw samples and roll-ups past their retention
    (``metrics.metrics_expire``). Returns [samples, roll-ups] deleted. Safe to run twice."""
    require_tenant()
    return list(metrics.metrics_expire(now=timezone.now()))


@app.task(acks_late=True)
def metrics_expire_sweep_task() -> int:
    """Beat entry (public schema, hourly): enqueue ``metrics_expire_task`` once per active tenant, naming
    each tenant in its message (tenant-schemas-celery #132). Returns how many tenants were enqueued."""
    from tenants.models import Tenant

    schemas = list(Tenant.objects.filter(status=Tenant.Status.ACTIVE).values_list("schema_name", flat=True))
    for schema_name in schemas:
        send_to_tenant(metrics_expire_task, schema_name=schema_name)
    return len(schemas)
