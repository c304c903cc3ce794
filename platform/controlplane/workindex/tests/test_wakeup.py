"""Tenant wake-ups: one row per (tenant, kind), lowered by LEAST, never written outside a tenant, read by
beat in one query over active tenants."""

from __future__ import annotations

import datetime as dt

import pytest
from django_tenants.utils import tenant_context

from controlplane.workindex.models import TenantWakeup
from controlplane.workindex.selectors import workindex_wakeups_due
from controlplane.workindex.services import NoTenant, workindex_wakeup_recompute, workindex_wakeup_set
from tenants.models import Tenant

T0 = dt.datetime(2031, 3, 3, 9, 0, tzinfo=dt.UTC)
MINUTE = dt.timedelta(minutes=1)


def rows() -> list[tuple[str, str, dt.datetime]]:
    return list(
        TenantWakeup.objects.order_by("tenant__slug", "kind").values_list("tenant__slug", "kind", "due_at")
    )


def test_wakeup_set_keeps_the_earliest_time_per_tenant_and_kind(tenant_a: Tenant, tenant_b: Tenant) -> None:
    with tenant_context(tenant_a):
        workindex_wakeup_set(kind="notifications", due_at=T0 + 5 * MINUTE)
        workindex_wakeup_set(kind="notifications", due_at=T0 + 10 * MINUTE)  # later: ignored
        workindex_wakeup_set(kind="notifications", due_at=T0 + MINUTE)  # earlier: taken
        workindex_wakeup_set(kind="other", due_at=T0)
    with tenant_context(tenant_b):
        workindex_wakeup_set(kind="notifications", due_at=T0 + 2 * MINUTE)
    assert rows() == [
        ("acme", "notifications", T0 + MINUTE),
        ("acme", "other", T0),
        ("globex", "notifications", T0 + 2 * MINUTE),
    ]
    assert workindex_wakeups_due(kind="notifications", now=T0, limit=10) == []
    assert workindex_wakeups_due(kind="notifications", now=T0 + MINUTE, limit=10) == [tenant_a.schema_name]
    assert workindex_wakeups_due(kind="notifications", now=T0 + 2 * MINUTE, limit=10) == [
        tenant_a.schema_name,
        tenant_b.schema_name,
    ]
    assert workindex_wakeups_due(kind="notifications", now=T0 + 2 * MINUTE, limit=1) == [tenant_a.schema_name]


def test_recompute_moves_deletes_and_inserts(tenant_a: Tenant) -> None:
    with tenant_context(tenant_a):
        workindex_wakeup_set(kind="notifications", due_at=T0)
        assert workindex_wakeup_recompute(kind="notifications", earliest=lambda: T0 + 30 * MINUTE) == (
            T0 + 30 * MINUTE
        )
        assert rows() == [("acme", "notifications", T0 + 30 * MINUTE)]  # moved later: the lock allows it
        assert workindex_wakeup_recompute(kind="notifications", earliest=lambda: None) is None
        assert rows() == []
        assert workindex_wakeup_recompute(kind="notifications", earliest=lambda: None) is None
        assert rows() == []
        workindex_wakeup_recompute(kind="notifications", earliest=lambda: T0)
        assert rows() == [("acme", "notifications", T0)]


def test_wakeups_are_written_only_inside_a_tenant(tenant_a: Tenant) -> None:
    with pytest.raises(NoTenant):
        workindex_wakeup_set(kind="notifications", due_at=T0)
    with pytest.raises(NoTenant):
        workindex_wakeup_recompute(kind="notifications", earliest=lambda: T0)
    assert rows() == []
