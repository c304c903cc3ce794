"""Celery tasks on a real broker (Redis when REDIS_URL is set, else the SQLAlchemy transport on
PostgreSQL) and a real worker: tasks run in the tenant named in their message, never in public."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterator

import pytest
from celery.contrib.testing.worker import start_worker
from django.db import connection
from django.utils import timezone
from django_tenants.utils import tenant_context
from psycopg import sql

from conftest import actor_in, make_user
from controlplane.accounts.models import User
from controlplane.celery import TenantMissing, app
from controlplane.providers.models import Provider
from modules.incidents.models import Incident
from modules.incidents.services import incident_create, incident_transition
from modules.incidents.tasks import incident_autoclose_sweep_task, incident_autoclose_task
from tenants.models import Tenant
from tenants.services import tenant_provision


@pytest.fixture
def committed_tenants(transactional_db: None) -> Iterator[tuple[Tenant, Tenant]]:
    """Two tenants committed for real (a worker thread has its own connection), dropped afterwards."""
    provider = Provider.objects.create(name="Northwind MSP", slug="northwind")
    tenants = (
        tenant_provision(provider=provider, name="Acme Corp", slug="acme"),
        tenant_provision(provider=provider, name="Globex", slug="globex"),
    )
    yield tenants
    with connection.cursor() as cursor:
        for tenant in tenants:
            cursor.execute(
                sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(tenant.schema_name))
            )


def resolved_incident(tenant: Tenant, user: User, days_ago: int) -> str:
    with tenant_context(tenant):
        actor = actor_in(tenant, user)
        incident = incident_create(actor=actor, short_description=f"resolved {days_ago} days ago")
        incident_transition(
            actor=actor,
            incident=incident,
            action="resolve",
            resolution_code="solved_permanently",
            resolution_notes="fixed",
            now=timezone.now() - dt.timedelta(days=days_ago),
        )
        return str(incident.pk)


def states(tenant: Tenant) -> dict[str, str]:
    with tenant_context(tenant):
        return {str(pk): state for pk, state in Incident.objects.values_list("pk", "state")}


def test_beat_sweep_closes_due_incidents_in_every_tenant_through_a_real_worker(
    committed_tenants: tuple[Tenant, Tenant],
) -> None:
    acme, globex = committed_tenants
    user = make_user("tech@northwind.example")
    old_a, new_a = resolved_incident(acme, user, 10), resolved_incident(acme, user, 1)
    old_b = resolved_incident(globex, user, 30)

    with start_worker(app, pool="solo", perform_ping_check=False, shutdown_timeout=30):
        incident_autoclose_sweep_task.delay()  # sent from public, like beat
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if states(acme)[old_a] == "closed" and states(globex)[old_b] == "closed":
                break
            time.sleep(0.2)

    assert states(acme) == {old_a: "closed", new_a: "resolved"}
    assert states(globex) == {old_b: "closed"}


def test_a_tenant_task_without_a_tenant_fails(db: None) -> None:
    """tenant-schemas-celery #132: a task sent from public would run in public; ours refuse to."""
    result = incident_autoclose_task.apply()
    assert isinstance(result.result, TenantMissing)
