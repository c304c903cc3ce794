"""Celery entry points for incidents. Tenant tasks run in the schema named in their message."""

from __future__ import annotations

from controlplane.celery import app, require_tenant, send_to_tenant

from . import services


@app.task(acks_late=True)
def incident_autoclose_task() -> int:
    """Close this tenant's incidents resolved longer ago than its auto-close period. Safe to run twice."""
    require_tenant()
    return services.incident_autoclose()


@app.task(acks_late=True)
def incident_autoclose_sweep_task() -> int:
    """Beat entry (public schema): enqueue ``incident_autoclose_task`` once per active tenant.

    Returns how many tenants were enqueued. The tenant is named explicitly in each message, since a
    task sent from public would otherwise run in public (tenant-schemas-celery #132).
    """
    from tenants.models import Tenant

    schemas = list(Tenant.objects.filter(status=Tenant.Status.ACTIVE).values_list("schema_name", flat=True))
    for schema_name in schemas:
        send_to_tenant(incident_autoclose_task, schema_name=schema_name)
    return len(schemas)
