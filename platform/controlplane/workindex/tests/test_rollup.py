"""The per-tenant daily rollup: counted live when records open and resolve (acknowledge and resolve
seconds from the record's history, on the tenant's local date), rebuilt nightly from the schema with the
same result; the SLA and satisfaction counters come from the modules that own them."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterator
from typing import Any

import pytest
from celery.contrib.testing.worker import start_worker
from django.db import connection
from django_tenants.utils import tenant_context
from psycopg import sql

from conftest import actor_in, make_user
from controlplane.accounts.models import User
from controlplane.celery import TenantMissing, app
from controlplane.providers.models import Provider
from controlplane.workindex.models import TenantDailyRollup
from controlplane.workindex.services import (
    workindex_local_day,
    workindex_rollup_add,
    workindex_rollup_rebuild,
)
from controlplane.workindex.tasks import workindex_rollup_nightly_task, workindex_rollup_rebuild_task
from modules.incidents.models import Incident
from modules.incidents.services import incident_create, incident_transition, incident_update
from modules.problems.services import problem_create, problem_transition, problem_update
from modules.requests.models import FulfilmentTask
from modules.requests.services import request_submit, task_transition
from modules.requests.tests.factories import item
from tenants.models import Tenant
from tenants.services import tenant_provision

COUNTERS = ("opened", "resolved", "acknowledged", "acknowledge_seconds", "resolve_seconds")
ALL = (*COUNTERS, "sla_met", "sla_breached", "satisfaction_sum", "satisfaction_count")


def rollup(tenant: Tenant) -> set[tuple[Any, ...]]:
    """The tenant's rollup rows: (record type, day, every counter)."""
    return set(TenantDailyRollup.objects.filter(tenant=tenant).values_list("record_type", "day", *ALL))


def resolve(actor: Any, incident: Incident, **kw: Any) -> Incident:
    return incident_transition(
        actor=actor, incident=incident, action="resolve", resolution_code="solved_permanently",
        resolution_notes="done", **kw,
    )  # fmt: skip


def test_live_increments_equal_the_nightly_rebuild(tenant_a: Tenant, tech_a: User) -> None:
    with tenant_context(tenant_a):
        actor = actor_in(tenant_a, tech_a)
        assigned = incident_create(actor=actor, short_description="assigned, then resolved")
        incident_update(actor=actor, incident=assigned, assigned_to=actor.person)
        resolve(actor, assigned)
        resolve(actor, incident_create(actor=actor, short_description="resolved from new"))
        twice = resolve(actor, incident_create(actor=actor, short_description="resolved twice"))
        incident_transition(actor=actor, incident=twice, action="reopen", comment="not fixed")
        resolve(actor, twice)
        incident_transition(
            actor=actor, incident=incident_create(actor=actor, short_description="cancelled"), action="cancel"
        )
        incident_create(actor=actor, short_description="still open")
        request = request_submit(actor=actor, items=[{"catalog_item": item(actor)}])
        task = FulfilmentTask.objects.get(requested_item__request=request)
        task_transition(actor=actor, task=task, action="start")
        task_transition(actor=actor, task=task, action="complete")
        problem = problem_create(actor=actor, short_description="recurring", assigned_to=actor.person)
        problem_update(actor=actor, problem=problem, root_cause="a bad patch")
        for action in ("assess", "start_analysis", "start_fix"):
            problem_transition(actor=actor, problem=problem, action=action)
        problem_transition(
            actor=actor,
            problem=problem,
            action="resolve",
            resolution_code="fix_applied",
            resolution_notes="ok",
        )
        today = workindex_local_day(Incident.objects.get(pk=twice.pk).opened_at)
        live = rollup(tenant_a)
        written = workindex_rollup_rebuild()
    rebuilt = rollup(tenant_a)

    counts = {(row[0], row[1]): row[2:5] for row in live}
    assert counts[("incident", today)] == (5, 3, 3)  # opened, resolved, acknowledged (all three resolved)
    assert counts[("service_request", today)] == (1, 1, 1)
    assert counts[("problem", today)] == (1, 1, 1)
    assert written == 3
    assert rebuilt == live


def test_seconds_are_exact_and_counted_on_the_tenant_s_local_day(tenant_b: Tenant, tech_ab: User) -> None:
    opened = dt.datetime(2026, 1, 9, 23, 30, tzinfo=dt.UTC)  # 18:30 in New York
    with tenant_context(tenant_b):
        actor = actor_in(tenant_b, tech_ab)
        incident = incident_create(actor=actor, short_description="late evening call")
        Incident.objects.filter(pk=incident.pk).update(opened_at=opened)  # as if opened then
        incident_transition(
            actor=actor, incident=incident, action="start", now=opened + dt.timedelta(minutes=10)
        )
        resolve(actor, incident, now=opened + dt.timedelta(hours=2))  # 01:30 UTC on the 10th, the 9th there
        live = TenantDailyRollup.objects.get(tenant=tenant_b, day=dt.date(2026, 1, 9), record_type="incident")
        workindex_rollup_rebuild(days=30, now=opened + dt.timedelta(days=1))
    rebuilt = rollup(tenant_b)

    assert [getattr(live, c) for c in COUNTERS] == [0, 1, 1, 600, 7200]
    assert rebuilt == {("incident", dt.date(2026, 1, 9), 1, 1, 1, 600, 7200, 0, 0, 0, 0)}


def test_the_rebuild_takes_sla_counts_from_the_timers_and_satisfaction_from_the_surveys(
    tenant_a: Tenant, tech_a: User
) -> None:
    with tenant_context(tenant_a):
        incident = incident_create(actor=actor_in(tenant_a, tech_a), short_description="open")
        today = workindex_local_day(incident.opened_at)
        quiet_day = today - dt.timedelta(days=3)
        workindex_rollup_add(
            record_type="incident", day=today, sla_met=2, satisfaction_sum=9, satisfaction_count=2
        )
        workindex_rollup_add(record_type="incident", day=quiet_day, opened=5, sla_breached=1)
        workindex_rollup_add(record_type="incident", day=quiet_day - dt.timedelta(days=1), opened=7)
        workindex_rollup_rebuild()
    # No SLA timer stopped (modules.sla owns those counts) and no survey was answered (modules.incidents
    # owns satisfaction): stale SLA, satisfaction and opened counts are zeroed, the rows left all zero gone.
    assert rollup(tenant_a) == {("incident", today, 1, 0, 0, 0, 0, 0, 0, 0, 0)}


def test_rollup_add_sums_atomically_and_never_goes_below_zero(tenant_a: Tenant) -> None:
    day = dt.date(2026, 3, 1)
    with tenant_context(tenant_a):
        workindex_rollup_add(record_type="incident", day=day, opened=1)
        workindex_rollup_add(record_type="incident", day=day, opened=2, resolved=1, resolve_seconds=60)
        workindex_rollup_add(record_type="incident", day=day, resolved=-3, resolve_seconds=-10)
        with pytest.raises(TypeError, match="unknown rollup counters: bogus"):
            workindex_rollup_add(record_type="incident", day=day, bogus=1)
    assert rollup(tenant_a) == {("incident", day, 3, 0, 0, 0, 50, 0, 0, 0, 0)}


def test_the_rebuild_task_refuses_to_run_without_a_tenant(db: None) -> None:
    result = workindex_rollup_rebuild_task.apply()
    assert isinstance(result.result, TenantMissing)


def test_the_nightly_beat_entry_is_at_two_utc() -> None:
    from django.conf import settings

    entry = settings.CELERY_BEAT_SCHEDULE["workindex-rollup-nightly"]
    assert entry["task"] == "controlplane.workindex.tasks.workindex_rollup_nightly_task"
    assert (entry["schedule"].hour, entry["schedule"].minute) == ({2}, {0})


@pytest.fixture
def committed_tenants(transactional_db: None) -> Iterator[tuple[Tenant, Tenant]]:
    """Two tenants committed for real (the worker thread has its own connection), dropped afterwards."""
    provider = Provider.objects.create(name="Northwind MSP", slug="northwind")
    tenants = (
        tenant_provision(provider=provider, name="Acme Corp", slug="acme", time_zone="Europe/London"),
        tenant_provision(provider=provider, name="Globex", slug="globex", time_zone="America/New_York"),
    )
    yield tenants
    with connection.cursor() as cursor:
        for tenant in tenants:
            cursor.execute(
                sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(tenant.schema_name))
            )


def test_the_nightly_task_rebuilds_every_tenant_through_a_real_worker(
    committed_tenants: tuple[Tenant, Tenant],
) -> None:
    user = make_user("tech@northwind.example")
    for tenant in committed_tenants:
        with tenant_context(tenant):
            resolve(
                actor_in(tenant, user), incident_create(actor=actor_in(tenant, user), short_description="x")
            )
    expected = {tenant.pk: rollup(tenant) for tenant in committed_tenants}
    TenantDailyRollup.objects.all().delete()

    with start_worker(app, pool="solo", perform_ping_check=False, shutdown_timeout=30):
        workindex_rollup_nightly_task.delay()  # sent from public, like beat
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and TenantDailyRollup.objects.count() < 2:
            time.sleep(0.2)

    assert {tenant.pk: rollup(tenant) for tenant in committed_tenants} == expected
    assert all(len(rows) == 1 for rows in expected.values())
