"""Reports applied on the real database: raw samples and hourly roll-ups, a batch applied twice,
heartbeats, retention."""

from __future__ import annotations

import datetime as dt

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django_tenants.utils import tenant_context

from controlplane.celery import TenantMissing
from modules.cmdb.models import ConfigurationItem
from modules.monitoring.ingest import reports_apply
from modules.monitoring.metrics import metrics_expire
from modules.monitoring.models import MetricRollup, MetricSample
from modules.monitoring.services import alert_rule_create
from modules.monitoring.tasks import metrics_expire_task
from modules.records.actor import Actor
from modules.records.models import uuid7
from tenants.models import Tenant

from .factories import AGENT, T0, at, metrics_data, report


def test_metrics_become_samples_and_hourly_rollups_once(tenant_a: Tenant) -> None:
    batch = [
        report("metrics", at(10), metrics_data(cpu=10, memory=50, disks=(40, 70))),
        report("metrics", at(20), metrics_data(cpu=30, memory=60, disks=(90,), stopped=("nginx",))),
        report("metrics", at(70), metrics_data(cpu=80, memory=10, disks=())),
        report("heartbeat", at(71), {"uptime_seconds": 5, "agent_version": "0.1.0"}),
    ]
    with tenant_context(tenant_a):
        reports_apply(reports=batch, now=at(75))
        ci = ConfigurationItem.objects.get(external_ref=f"agent:{AGENT}")
        assert ci.name == "web-01"
        samples = list(MetricSample.objects.order_by("at").values_list("cpu", "disk", "stopped", "ci_id"))
        assert samples == [(10, 70, [], ci.pk), (30, 90, ["nginx"], ci.pk), (80, None, [], ci.pk)]
        first, second = MetricRollup.objects.order_by("hour")
        assert (first.hour, first.samples, first.cpu_avg, first.cpu_max, first.disk_max) == (
            T0,
            2,
            20,
            30,
            90,
        )
        assert (first.memory_avg, first.memory_max) == (55, 60)
        assert (second.hour, second.samples, second.disk_avg) == (T0 + dt.timedelta(hours=1), 1, None)
        # The same batch again (a redelivered task): nothing is counted twice.
        reports_apply(reports=batch, now=at(76))
        assert MetricSample.objects.count() == 3
        first.refresh_from_db()
        assert (first.samples, first.cpu_avg) == (2, 20)
        # A later sample of the same hour merges into its roll-up.
        reports_apply(reports=[report("metrics", at(30), metrics_data(cpu=60, disks=(10,)))], now=at(77))
        first.refresh_from_db()
        assert (first.samples, first.cpu_avg, first.cpu_max, first.disk_max) == (
            3,
            pytest.approx(100 / 3),
            60,
            90,
        )


def test_samples_from_the_future_or_past_the_retention_are_dropped(tenant_a: Tenant) -> None:
    with tenant_context(tenant_a):
        reports_apply(
            reports=[
                report("metrics", at(30), metrics_data()),
                report("metrics", at(-91 * 24 * 60), metrics_data()),
            ],
            now=at(0),
        )
        assert MetricSample.objects.count() == 0
        assert ConfigurationItem.objects.filter(external_ref=f"agent:{AGENT}").exists()


def test_expiry_keeps_48_hours_of_samples_and_90_days_of_rollups(tenant_a: Tenant) -> None:
    now = T0 + dt.timedelta(days=100)
    with tenant_context(tenant_a):
        reports_apply(
            reports=[
                report("metrics", now - dt.timedelta(days=89), metrics_data()),
                report("metrics", now - dt.timedelta(hours=49), metrics_data()),
                report("metrics", now - dt.timedelta(hours=47), metrics_data()),
            ],
            now=now,
        )
        MetricRollup.objects.create(
            agent_id=AGENT,
            ci_id=MetricSample.objects.first().ci_id,  # type: ignore[union-attr]
            hour=now - dt.timedelta(days=91),
            samples=1,
            cpu_avg=1,
            cpu_max=1,
            memory_avg=1,
            memory_max=1,
            load1_avg=1,
            load1_max=1,
        )
        assert metrics_expire(now=now) == (2, 1)
        assert list(MetricSample.objects.values_list("at", flat=True)) == [now - dt.timedelta(hours=47)]
        assert MetricRollup.objects.count() == 3
        assert metrics_expire(now=now) == (0, 0)


def test_the_expiry_task_refuses_to_run_without_a_tenant(db: None) -> None:
    result = metrics_expire_task.apply()
    assert isinstance(result.result, TenantMissing)


def test_a_large_batch_costs_a_bounded_number_of_statements(tenant_a: Tenant, tenant_b: Tenant) -> None:
    agents = [uuid7() for _ in range(100)]
    batch = [
        report("metrics", at(minute), metrics_data(cpu=50), agent=agent)
        for agent in agents
        for minute in range(20)
    ]
    with tenant_context(tenant_a):
        alert_rule_create(actor=Actor.system(), name="CPU", kind="cpu", threshold=90, minutes=5)
        with CaptureQueriesContext(connection) as queries:
            reports_apply(reports=batch, now=at(20))
        assert len(queries) < 25, len(queries)
        assert MetricSample.objects.count() == 2000
        assert ConfigurationItem.objects.filter(ci_class="computer").count() == 100
    with tenant_context(tenant_b):  # another tenant's schema saw nothing
        assert not MetricSample.objects.exists()
        assert not ConfigurationItem.objects.exists()
