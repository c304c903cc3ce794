"""The summaries the cross-client dashboard reads (decision 0014): the per-tenant running totals of the
rollup, the provider's daily volume, categories and backlog hours, kept by triggers. Each test compares
them with sums computed straight from the per-tenant rows, after live writes, ORM writes, a rebuild run
twice and deletes; then the dashboard's two paths (whole provider, per client) give the same numbers, and
a partial grant sees only its clients."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from django_tenants.utils import tenant_context

from conftest import actor_in, make_user
from controlplane.accounts.models import User
from controlplane.accounts.services import provider_membership_set, tenant_grant
from controlplane.dashboards.models import ProviderDailyCategory, TenantDailyCategory
from controlplane.dashboards.selectors import COUNTERS, Dashboard, dashboard_get, dashboard_tenants_for_user
from controlplane.dashboards.services import dashboard_category_add
from controlplane.providers.models import Provider
from controlplane.workindex.models import (
    STRIPES,
    ProviderBacklogHour,
    ProviderDailyRollup,
    TenantDailyRollup,
    TenantRollupTotal,
    WorkItem,
)
from controlplane.workindex.services import workindex_rollup_add, workindex_rollup_rebuild
from tenants.models import Tenant


def assert_summaries_match() -> None:
    """Every summary equals what its source rows say (zero sums may be absent)."""
    daily: dict[int, dict[dt.date, dict[str, int]]] = defaultdict(
        lambda: defaultdict(lambda: dict.fromkeys(COUNTERS, 0))
    )
    volume: dict[tuple[int, dt.date], list[int]] = defaultdict(lambda: [0, 0])
    for row in TenantDailyRollup.objects.all():
        for c in COUNTERS:
            daily[row.tenant_id][row.day][c] += getattr(row, c)
        volume[(row.provider_id, row.day)][0] += row.opened
        volume[(row.provider_id, row.day)][1] += row.resolved
    totals = {
        (t.tenant_id, t.day): {c: getattr(t, c) for c in COUNTERS} for t in TenantRollupTotal.objects.all()
    }
    for tenant_id, days in daily.items():
        running = dict.fromkeys(COUNTERS, 0)
        for day in sorted(days):
            running = {c: running[c] + days[day][c] for c in COUNTERS}
            assert totals[(tenant_id, day)] == running, (tenant_id, day)
    for (tenant_id, day), values in totals.items():
        expected = {c: sum(v[c] for d, v in daily[tenant_id].items() if d <= day) for c in COUNTERS}
        assert values == expected, (tenant_id, day)
    got: dict[tuple[int, dt.date], list[int]] = defaultdict(lambda: [0, 0])
    for p in ProviderDailyRollup.objects.all():
        got[(p.provider_id, p.day)][0] += p.opened
        got[(p.provider_id, p.day)][1] += p.resolved
    assert {k: v for k, v in got.items() if v != [0, 0]} == {k: v for k, v in volume.items() if v != [0, 0]}
    categories: dict[tuple[object, ...], int] = defaultdict(int)
    for category in TenantDailyCategory.objects.all():
        categories[(category.provider_id, category.day, category.record_type, category.category)] += (
            category.opened
        )
    provider_categories = {
        (p.provider_id, p.day, p.record_type, p.category): p.opened
        for p in ProviderDailyCategory.objects.all()
    }
    assert {k: v for k, v in provider_categories.items() if v} == {k: v for k, v in categories.items() if v}
    hours: dict[tuple[object, ...], int] = defaultdict(int)
    for item in WorkItem.objects.all():
        start = item.opened_at.astimezone(dt.UTC).replace(minute=0, second=0, microsecond=0)
        hours[(item.provider_id, item.tenant_id % STRIPES, start)] += 1
    backlog = {
        (b.provider_id, b.stripe, b.opened_hour): b.open_records for b in ProviderBacklogHour.objects.all()
    }
    assert backlog == dict(hours)  # rows that fall to 0 are deleted


def work_item(tenant: Tenant, opened_at: dt.datetime, n: int) -> WorkItem:
    return WorkItem.objects.create(
        tenant=tenant,
        provider_id=tenant.provider_id,
        record_type="incident",
        record_id=f"00000000-0000-7000-8000-{tenant.pk:06d}{n:06d}",
        number=f"INC{n:07d}",
        title="t",
        state="new",
        opened_at=opened_at,
        updated_at=opened_at,
    )


def test_summaries_follow_live_orm_and_bulk_writes(tenant_a: Tenant, tenant_b: Tenant) -> None:
    today = timezone.localdate()
    with tenant_context(tenant_a):
        workindex_rollup_add(record_type="incident", day=today, opened=3, resolved=1, resolve_seconds=60)
        workindex_rollup_add(record_type="problem", day=today, opened=1)
        # A backdated count lands before existing totals: every later total moves.
        workindex_rollup_add(record_type="incident", day=today - dt.timedelta(days=5), opened=2, sla_met=1)
        # Taking back more than was counted: the daily counter stops at 0, and so do the totals.
        workindex_rollup_add(record_type="problem", day=today, opened=-4)
        dashboard_category_add(record_type="incident", opened_at=timezone.now(), category="hardware", count=2)
    with tenant_context(tenant_b):
        workindex_rollup_add(
            record_type="incident", day=today - dt.timedelta(days=1), opened=7, sla_breached=2
        )
        dashboard_category_add(record_type="incident", opened_at=timezone.now(), category="hardware", count=1)
    assert_summaries_match()
    assert TenantRollupTotal.objects.get(tenant=tenant_a, day=today).opened == 5  # 3 + 2 + (1 - 1)
    # ORM writes (update, bulk create, delete) reach the triggers just the same.
    TenantDailyRollup.objects.filter(tenant=tenant_a, record_type="incident").update(satisfaction_sum=9)
    TenantDailyRollup.objects.bulk_create(
        TenantDailyRollup(
            tenant=tenant_b,
            provider_id=tenant_b.provider_id,
            day=today - dt.timedelta(days=d),
            record_type="service_request",
            opened=d,
            resolved=1,
        )
        for d in range(1, 40)
    )
    TenantDailyCategory.objects.filter(tenant=tenant_b).update(opened=5)
    now = timezone.now()
    items = [
        work_item(tenant, now - dt.timedelta(hours=h), h)
        for h in (1, 2, 30, 500)
        for tenant in (tenant_a, tenant_b)
    ]
    WorkItem.objects.filter(pk=items[0].pk).update(opened_at=now - dt.timedelta(days=40))
    assert_summaries_match()
    TenantDailyRollup.objects.filter(tenant=tenant_a, day=today).delete()
    TenantDailyCategory.objects.filter(tenant=tenant_a).delete()
    WorkItem.objects.filter(tenant=tenant_b).delete()
    assert_summaries_match()
    assert not ProviderBacklogHour.objects.filter(stripe=tenant_b.pk % STRIPES, open_records=0).exists()


def test_rebuild_run_twice_keeps_the_summaries_exact(tenant_a: Tenant, tech_a: User) -> None:
    from modules.incidents.services import incident_create

    with tenant_context(tenant_a):
        actor = actor_in(tenant_a, tech_a)
        for n in range(3):
            incident_create(actor=actor, short_description=f"printer {n}", category="hardware")
        # A stale count the rebuild must correct, summaries included.
        workindex_rollup_add(
            record_type="incident", day=timezone.localdate() - dt.timedelta(days=3), opened=5
        )
        dashboard_category_add(
            record_type="incident", opened_at=timezone.now() - dt.timedelta(days=3), category="stale", count=4
        )
        assert_summaries_match()
        workindex_rollup_rebuild(days=30)
        assert_summaries_match()
        first = sorted(TenantRollupTotal.objects.filter(opened__gt=0).values_list("day", *COUNTERS))
        workindex_rollup_rebuild(days=30)
        assert_summaries_match()
        assert sorted(TenantRollupTotal.objects.filter(opened__gt=0).values_list("day", *COUNTERS)) == first
    assert TenantRollupTotal.objects.filter(tenant=tenant_a).order_by("-day").first().opened == 3  # type: ignore[union-attr]
    assert ProviderDailyCategory.objects.get(category="hardware").opened == 3
    assert not ProviderDailyCategory.objects.filter(category="stale").exclude(opened=0).exists()


EDGE_ITEMS = (
    (0, -7),
    (0, 7),
    (1, -7),
    (1, 0),
    (1, 7),
    (3, -7),
    (3, 7),
    (7, -7),
    (7, 7),
    (30, -7),
    (30, 7),
    (31, -7),
    (31, 7),
)
PER_CLIENT_BACKLOG = [3, 3, 2, 2, 3]


def fixed_now() -> dt.datetime:  # a fixed "now" of this test run: half past the current hour
    return timezone.now().replace(minute=30, second=0, microsecond=0)


def clients(provider: Provider, count: int) -> list[Tenant]:
    """``count`` clients of ``provider`` (control-plane rows only), each with its own numbers."""
    today = timezone.localdate()
    now = fixed_now()
    tenants = []
    for i in range(count):
        tenant = Tenant.objects.create(
            provider=provider, name=f"Client {i:02d}", slug=f"client-{i:02d}", schema_name=f"t_client_{i:02d}"
        )
        for d in (0, 10, 40, 89, 95):
            TenantDailyRollup.objects.create(
                tenant=tenant,
                provider=provider,
                day=today - dt.timedelta(days=d),
                record_type="incident",
                opened=i + d,
                resolved=i,
                acknowledged=1,
                acknowledge_seconds=60 * i,
                resolve_seconds=3600 + i,
                sla_met=d % 3,
                sla_breached=i % 2,
                satisfaction_sum=4,
                satisfaction_count=1,
            )
            TenantDailyCategory.objects.create(
                tenant=tenant,
                provider=provider,
                day=today - dt.timedelta(days=d),
                record_type="incident",
                category=f"cat {(i + d) % 7}",
                opened=1 + i,
            )
        # Open records 7 minutes either side of every backlog edge (inside the edge's own hour: the
        # partial hours), and one exactly 1 day old (the older bucket: "< 1 d" is strictly younger).
        for n, (days, minutes) in enumerate(EDGE_ITEMS):
            work_item(tenant, now - dt.timedelta(days=days, minutes=minutes), n)
        tenants.append(tenant)
    return tenants


def numbers(dashboard: Dashboard) -> dict[str, list[tuple[object, ...]]]:
    return {key: chart.rows for key, chart in dashboard.charts.items()}


@pytest.mark.parametrize("days", [30, 90])
def test_whole_provider_path_equals_per_client_rows_and_partial_grants_see_only_theirs(
    provider: Provider, days: int
) -> None:
    tenants = clients(provider, 24)
    everyone = make_user("all@northwind.example")
    provider_membership_set(user=everyone, provider=provider, role="technician", all_clients=True)
    some = make_user("some@northwind.example")
    membership = provider_membership_set(user=some, provider=provider, role="technician")
    for tenant in tenants[::3]:
        tenant_grant(membership=membership, tenant=tenant)
    now = fixed_now()
    today = timezone.localdate()

    def dashboard_of(user: User, ids: set[int] | None = None) -> Dashboard:
        visible = list(dashboard_tenants_for_user(user=user).values_list("pk", "name"))
        chosen = [t for t in visible if ids is None or t[0] in ids]
        return dashboard_get(
            tenant_ids=[pk for pk, _ in chosen],
            days=days,
            today=today,
            breakdown="tenant",
            labels=dict(chosen),
            now=now,
        )

    with CaptureQueriesContext(connection) as queries:
        whole = dashboard_of(everyone)
    assert any(ProviderDailyRollup._meta.db_table in q["sql"] for q in queries.captured_queries)
    # A suspended client with no numbers leaves the list: the same numbers now come from per-client rows.
    spare = Tenant.objects.create(
        provider=provider, name="Spare", slug="spare", schema_name="t_spare", status="suspended"
    )
    with CaptureQueriesContext(connection) as queries:
        per_client = dashboard_of(everyone)
    assert not any(ProviderDailyRollup._meta.db_table in q["sql"] for q in queries.captured_queries)
    assert numbers(whole) == numbers(per_client)
    spare.delete()
    assert numbers(dashboard_of(everyone)) == numbers(whole)
    # Exact numbers from the rows themselves.
    start = today - dt.timedelta(days=days - 1)
    in_window = [d for d in (0, 10, 40, 89, 95) if d < days]
    opened = sum(int(r[1]) for r in whole.charts["volume"].rows)  # type: ignore[call-overload]
    assert opened == sum(i + d for i in range(24) for d in in_window)
    assert whole.charts["sla"].rows[-1][1:3] == (
        sum(d % 3 for d in in_window) * 24,
        sum(i % 2 for i in range(24)) * len(in_window),
    )
    assert [r[1] for r in whole.charts["backlog"].rows] == [24 * n for n in PER_CLIENT_BACKLOG]
    assert whole.start == start
    # The partial grant: only its clients' numbers, equal to what the rows of those clients say.
    granted = {t.pk for t in tenants[::3]}
    partial = dashboard_of(some)
    assert {r[0] for r in partial.charts["sla"].rows[:-1]} == {t.name for t in tenants[::3]}
    assert sum(int(r[1]) for r in partial.charts["volume"].rows) == sum(  # type: ignore[call-overload]
        i + d for i in range(24) if tenants[i].pk in granted for d in in_window
    )
    assert [r[1] for r in partial.charts["backlog"].rows] == [8 * n for n in PER_CLIENT_BACKLOG]
    assert partial.charts["satisfaction"].rows[-1] == ("All", 8 * len(in_window), 4.0)
    assert partial.charts["categories"].rows == dashboard_of(everyone, ids=granted).charts["categories"].rows
