"""The Celery app. Tasks are tenant-aware: tenant-schemas-celery carries the schema in a message header."""

from __future__ import annotations

import os
from typing import Any

from celery import Task
from tenant_schemas_celery.app import CeleryApp

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "controlplane.settings.local")

app = CeleryApp("controlplane")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks(
    [
        "modules.incidents",
        "modules.notifications",
        "modules.mailin",
        "modules.sla",
        "modules.monitoring",
        "controlplane.mailin",
        "controlplane.workindex",
        "tenants",
        "agent_gateway",
    ]
)


class TenantMissing(RuntimeError):
    """A tenant task ran in the public schema: it was sent without a tenant."""


def require_tenant() -> None:
    """Fail a tenant task that runs without a tenant (tenant-schemas-celery #132: it would run in public).

    Raises TenantMissing when the connection is on the public schema.
    """
    from django.db import connection

    if getattr(connection, "schema_name", "public") == "public":
        raise TenantMissing("tenant task sent without a tenant")


def send_to_tenant(task: Task, *, schema_name: str, **kwargs: Any) -> None:
    """Enqueue ``task`` with ``kwargs`` to run in the tenant schema ``schema_name``.

    The schema is named explicitly, so sending from public (beat, webhooks) still reaches the tenant.
    """
    task.apply_async(kwargs=kwargs, headers={"_schema_name": schema_name})
