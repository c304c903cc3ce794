"""Benchmark: the technician's queue over 1,000 tenants with 1,000 open records each (1,000,000 index rows).

The data set comes from ``workindex_data.build_work_index`` (Tenant rows and index rows by SQL, no tenant
schemas: the queue reads only the control-plane index). Two technicians: one with "all clients" (every
tenant) and one with grants to 50 tenants. For each, through the production selector
``controlplane.workindex.selectors.workindex_queue`` (membership query + page query, rows built as the
API builds them): the first page (50 rows) without filters and with each filter, and the 20th page
through keyset cursors. Target (issue 4): p95 <= 50 ms. Written to .data/bench/queue.json.

Sizes: BENCH_QUEUE_TENANTS (default 1000), BENCH_QUEUE_ROWS (rows per tenant, default 1000),
BENCH_QUEUE_QUERIES (timed calls per case, default 50).
"""

from __future__ import annotations

import os
import time
from functools import partial
from typing import Any

import pytest
from django.db import connection

from controlplane.accounts.models import User
from controlplane.workindex.selectors import workindex_queue

from .measure import summary, timed, write_result
from .workindex_data import build_work_index

TENANTS = int(os.environ.get("BENCH_QUEUE_TENANTS", "1000"))
ROWS = int(os.environ.get("BENCH_QUEUE_ROWS", "1000"))
QUERIES = int(os.environ.get("BENCH_QUEUE_QUERIES", "50"))
TARGET_P95_MS = 50.0


def deep_page(user: User, pages: int) -> None:
    """Walk ``pages`` pages with cursors (each page is one timed sample's worth of work / pages)."""
    cursor = None
    for _ in range(pages):
        cursor = workindex_queue(user=user, cursor=cursor).next_cursor


def explain(user: User, filters: dict[str, Any]) -> str:
    """The plan's first line (the access path) of the page query for ``filters``."""
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as queries:
        workindex_queue(user=user, **filters)
    page_sql = queries.captured_queries[-1]["sql"]
    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN (ANALYZE, BUFFERS) {page_sql}")
        lines = [row[0] for row in cursor.fetchall()]
    return " | ".join(line.strip() for line in lines[:4]) + " | " + lines[-1].strip()


@pytest.mark.django_db(transaction=True)
def test_queue_benchmark() -> None:
    started = time.perf_counter()
    data = build_work_index(tenants=TENANTS, rows_per_tenant=ROWS)
    build_seconds = round(time.perf_counter() - started, 1)
    some_tenant = "bench-" + str(data.tenant_ids.index(data.granted_tenant_ids[1]) + 1)
    cases: dict[str, dict[str, Any]] = {
        "first page": {},
        "assigned to me": {"assigned_to_me": True},
        "my groups": {"my_groups": True},
        "unassigned": {"unassigned": True},
        "breached": {"breached": True},
        "due within 4 h": {"due_within_hours": 4, "now": data.now},
        "one tenant": {"tenant": some_tenant},
        "problems only": {"record_type": "problem"},
        "my groups, unassigned, due 24 h": {"my_groups": True, "unassigned": True, "due_within_hours": 24},
    }
    result: dict[str, Any] = {"tenants": TENANTS, "rows": data.rows, "build_seconds": build_seconds}
    plans: dict[str, str] = {}
    for who, user in (("all clients", data.all_clients), ("50 grants", data.granted)):
        for name, filters in cases.items():
            call = partial(workindex_queue, user=user, **filters)
            assert len(call().rows) > 0, f"{who} / {name}: the case returns no rows"
            call()  # warm
            result[f"{who}: {name}"] = summary([timed(call) for _ in range(QUERIES)])
            plans[f"{who}: {name}"] = explain(user, filters)
        pages = 20
        deep = [timed(partial(deep_page, user, pages)) / pages for _ in range(max(5, QUERIES // 10))]
        result[f"{who}: per page, walking 20 pages"] = summary(deep)
    result["plans"] = plans
    path = write_result("queue", result)
    print(f"\nqueue over {TENANTS:,} tenants, {data.rows:,} open rows (built in {build_seconds} s) (ms)")
    print(f"  {'case':48}     n     p50     p95    mean")
    worst = 0.0
    for name, r in result.items():
        if isinstance(r, dict) and "p95_ms" in r:
            worst = max(worst, r["p95_ms"])
            print(f"  {name:48} {r['n']:5} {r['p50_ms']:7} {r['p95_ms']:7} {r['mean_ms']:7}")
    print(f"  worst p95 {worst} ms (target <= {TARGET_P95_MS} ms); PostgreSQL {result['postgresql']}; {path}")
