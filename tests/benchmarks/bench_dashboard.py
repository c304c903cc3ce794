"""Benchmark: the dashboards over 1,000 tenants with 400 days of rollup each.

Data: ``workindex_data.build_work_index`` (Tenant rows and open WorkItem rows by SQL, no schemas: the
dashboards read only control-plane tables), then by SQL for every tenant and each of the last 400 days:
one rollup row per record type (incident, service request, problem: 1,200 rows a tenant) and five
category rows. Timed through the production selector ``controlplane.dashboards.selectors.dashboard_get``
with the tenant list as the view builds it: all clients (every tenant: the provider-wide summaries), 200
and 50 grants (the per-client path: running totals, and the clients' daily rows), over 30 and 90 days, and
one tenant (the tenant dashboard). The rollup and category rows are inserted by SQL, so the summary
triggers (decision 0014) fill the summaries as the live writers would. Target (issue 5, every page): p95 <= 100 ms. Written to
.data/bench/dashboard.json.

Sizes: BENCH_DASH_TENANTS (default 1000), BENCH_DASH_ROWS (open records per tenant, default 200),
BENCH_DASH_QUERIES (timed calls per case, default 30).
"""

from __future__ import annotations

import datetime as dt
import os
import time
from collections.abc import Callable
from functools import partial
from typing import Any

import pytest
from django.db import connection
from django.utils import timezone

from controlplane.accounts.models import TenantGrant, User
from controlplane.accounts.services import provider_membership_set, user_create
from controlplane.dashboards.selectors import dashboard_get, dashboard_tenants_for_user, record_type_labels

from .measure import summary, timed, write_result
from .workindex_data import build_work_index

TENANTS = int(os.environ.get("BENCH_DASH_TENANTS", "1000"))
ROWS = int(os.environ.get("BENCH_DASH_ROWS", "200"))
QUERIES = int(os.environ.get("BENCH_DASH_QUERIES", "30"))
DAYS_KEPT = 400
TARGET_P95_MS = 100.0
WIDE_GRANTS = 200


def cross_client(user: User, days: int, today: dt.date) -> None:
    """What the cross-client view does: the user's tenants, then every chart's numbers."""
    tenants = list(dashboard_tenants_for_user(user=user).values_list("pk", "name"))
    dashboard_get(
        tenant_ids=[pk for pk, _ in tenants],
        days=days,
        today=today,
        breakdown="tenant",
        labels=dict(tenants),
    )


@pytest.mark.django_db(transaction=True)
def test_dashboard_benchmark() -> None:
    started = time.perf_counter()
    data = build_work_index(tenants=TENANTS, rows_per_tenant=ROWS, slug="dash")
    today = timezone.localdate()
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO workindex_tenantdailyrollup (tenant_id, provider_id, day, record_type, opened, resolved,"
            " acknowledged, acknowledge_seconds, resolve_seconds, sla_met, sla_breached, satisfaction_sum,"
            " satisfaction_count)"
            " SELECT t.id, t.provider_id, %(today)s - d, k.type, 5 + (t.id + d) %% 20, 4 + (t.id * d) %% 18,"
            "  3, 3 * (600 + d), 4 * (7200 + t.id), 3, (t.id + d) %% 2, 8, 2"
            " FROM tenants_tenant t, generate_series(0, %(days)s - 1) d,"
            " unnest(ARRAY['incident', 'service_request', 'problem']) AS k(type)"
            " WHERE t.provider_id = %(provider)s",
            {"today": today, "days": DAYS_KEPT, "provider": data.provider.pk},
        )
        cursor.execute(
            "INSERT INTO dashboards_tenantdailycategory (tenant_id, provider_id, day, record_type, category, opened)"
            " SELECT t.id, t.provider_id, %(today)s - d, 'incident', 'category ' || ((t.id + c) %% 40), 1 + c"
            " FROM tenants_tenant t, generate_series(0, %(days)s - 1) d, generate_series(1, 5) c"
            " WHERE t.provider_id = %(provider)s",
            {"today": today, "days": DAYS_KEPT, "provider": data.provider.pk},
        )
        for table in (
            "workindex_tenantdailyrollup",
            "dashboards_tenantdailycategory",
            # The summaries the triggers filled (decision 0014), analysed as autovacuum would.
            "workindex_tenantrolluptotal",
            "workindex_providerdailyrollup",
            "workindex_providerbackloghour",
            "dashboards_providerdailycategory",
        ):
            cursor.execute(f"VACUUM ANALYZE {table}")
    build_seconds = round(time.perf_counter() - started, 1)
    wide = user_create(
        email="wide@dash.example", password="bench-password-1", full_name="Wide", email_verified=True
    )
    membership = provider_membership_set(user=wide, provider=data.provider, role="technician")
    TenantGrant.objects.bulk_create(
        TenantGrant(membership=membership, tenant_id=t) for t in data.tenant_ids[::5][:WIDE_GRANTS]
    )
    one = data.granted_tenant_ids[0]
    cases: dict[str, Callable[[], object]] = {
        "all clients, 30 days": partial(cross_client, data.all_clients, 30, today),
        "all clients, 90 days": partial(cross_client, data.all_clients, 90, today),
        f"{WIDE_GRANTS} grants, 30 days": partial(cross_client, wide, 30, today),
        f"{WIDE_GRANTS} grants, 90 days": partial(cross_client, wide, 90, today),
        "50 grants, 30 days": partial(cross_client, data.granted, 30, today),
        "50 grants, 90 days": partial(cross_client, data.granted, 90, today),
        "one tenant, 90 days": partial(
            dashboard_get,
            tenant_ids=[one],
            days=90,
            today=today,
            breakdown="record_type",
            labels=record_type_labels(),
        ),
    }
    result: dict[str, Any] = {"tenants": TENANTS, "open_rows": data.rows, "build_seconds": build_seconds}
    for name, call in cases.items():
        call()  # warm
        result[name] = summary([timed(call) for _ in range(QUERIES)])
    path = write_result("dashboard", result)
    print(f"\ndashboards over {TENANTS:,} tenants x {DAYS_KEPT} days, {data.rows:,} open rows (ms)")
    print(f"  {'case':30}     n     p50     p95    mean")
    for name in cases:
        r = result[name]
        print(f"  {name:30} {r['n']:5} {r['p50_ms']:7} {r['p95_ms']:7} {r['mean_ms']:7}")
    worst = max(result[name]["p95_ms"] for name in cases)
    print(f"  worst p95 {worst} ms (target <= {TARGET_P95_MS} ms); PostgreSQL {result['postgresql']}; {path}")
