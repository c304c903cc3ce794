"""Celery entry points of the work index: the nightly rollup rebuild, one tenant task per active tenant."""

from __future__ import annotations

from controlplane.celery import app, require_tenant, send_to_tenant

from . import services

REBUILD_DAYS = 400


@app.task(acks_late=True)
def workindex_rollup_rebuild_task(*, days: int = REBUILD_DAYS) -> int:
    """Recompute this tenant's daily rollup of the last ``days`` days from its schema (one transaction;
    safe to run twice). Returns the rows written."""
    require_tenant()
    return services.workindex_rollup_rebuild(days=days)


@app.task(acks_late=True)
def workindex_rollup_nightly_task(*, days: int = REBUILD_DAYS) -> int:
    """Beat entry (public schema, nightly): enqueue ``workindex_rollup_rebuild_task`` once per active
    tenant, naming its schema (tenant-schemas-celery #132). Returns how many tenants were enqueued."""
    from tenants.models import Tenant

    schemas = list(Tenant.objects.filter(status=Tenant.Status.ACTIVE).values_list("schema_name", flat=True))
    for schema_name in schemas:
        send_to_tenant(workindex_rollup_rebuild_task, schema_name=schema_name, days=days)
    return len(schemas)
