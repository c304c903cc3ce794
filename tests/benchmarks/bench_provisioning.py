"""Benchmark: provisioning time per new tenant, against two baselines measured in the same run.

- ours:  ``tenants.services.tenant_provision`` (tenant row, domain row, schema from the template snapshot,
         seed rows copied), one transaction;
- plain: django-tenants' create-by-migrations path (``auto_create_schema``: CREATE SCHEMA, then
         ``migrate_schemas`` for that schema);
- floor: the same schema's DDL (the snapshot's script, no rows) run as one script in one transaction.

Plain runs first (smallest catalog, so its ratio to ours is understated); then ours and floor run
interleaved, alternating which goes first, so they see the same catalog size and machine load. Targets (issue 2): ours p50 <= 250 ms, >= 5x faster than plain, within 1.5x of floor.
Counts: BENCH_TENANTS (default 200) for ours and floor, BENCH_PLAIN_TENANTS (default 200) for plain.
Results are printed and written to .data/bench/provisioning.json.
"""

from __future__ import annotations

import json
import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection, transaction
from psycopg import sql

from controlplane.providers.models import Provider
from tenants.models import Domain, Tenant
from tenants.services import new_schema_name, tenant_provision
from tenants.template import template_snapshot

TENANTS = int(os.environ.get("BENCH_TENANTS", "200"))
PLAIN_TENANTS = int(os.environ.get("BENCH_PLAIN_TENANTS", "200"))


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def timed(action: Callable[[], object]) -> float:
    start = time.perf_counter()
    action()
    return (time.perf_counter() - start) * 1000.0


@pytest.mark.django_db(transaction=True)
def test_provisioning_benchmark() -> None:
    provider = Provider.objects.create(name="Bench MSP", slug="bench")
    snapshot = template_snapshot()  # warm: built once per process, keyed by the template's migrations
    created_schemas: list[str] = []
    counter = iter(range(10**6))

    def ours() -> None:
        tenant = tenant_provision(provider=provider, name="Bench", slug=f"bench-ours-{next(counter)}")
        created_schemas.append(tenant.schema_name)

    def floor() -> None:
        schema = new_schema_name()
        with transaction.atomic(), connection.cursor() as cursor:
            script = sql.Composed(
                [
                    sql.SQL("CREATE SCHEMA {0}; SET LOCAL search_path TO {0};\n").format(
                        sql.Identifier(schema)
                    ),
                    sql.SQL(snapshot.ddl),
                ]
            )
            cursor.execute(script.as_string(cursor.connection))
        created_schemas.append(schema)

    def plain() -> None:
        slug = f"bench-plain-{next(counter)}"
        tenant = Tenant(provider=provider, name="Bench", slug=slug, schema_name=new_schema_name())
        tenant.auto_create_schema = True  # django-tenants: CREATE SCHEMA + migrate_schemas on save
        tenant.save(verbosity=0)
        Domain.objects.create(domain=f"{slug}.bench.localhost", tenant=tenant)
        created_schemas.append(tenant.schema_name)

    samples: dict[str, list[float]] = {"ours": [], "floor": [], "plain": []}
    try:
        # Plain first, while the catalog is smallest: that favours plain, so plain/ours is understated.
        # It runs apart because django-tenants closes the connection after each migration, and whatever ran
        # next would pay for a new server process.
        plain()  # untimed warm-up
        samples["plain"] = [timed(plain) for _ in range(PLAIN_TENANTS)]
        ours()  # untimed warm-up on the new connection
        floor()
        # Ours and floor interleaved, alternating which goes first, so both see the same catalog and load.
        for index in range(TENANTS):
            pair = (
                (("ours", ours), ("floor", floor)) if index % 2 == 0 else (("floor", floor), ("ours", ours))
            )
            for name, run in pair:
                samples[name].append(timed(run))
    finally:
        with connection.cursor() as cursor:
            for schema in created_schemas:
                cursor.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))

    result = {
        name: {
            "n": len(values),
            "p50_ms": round(statistics.median(values), 1),
            "p95_ms": round(percentile(values, 0.95), 1),
            "mean_ms": round(statistics.fmean(values), 1),
        }
        for name, values in samples.items()
    }
    result["ratios"] = {
        "plain_over_ours_p50": round(result["plain"]["p50_ms"] / result["ours"]["p50_ms"], 2),
        "ours_over_floor_p50": round(result["ours"]["p50_ms"] / result["floor"]["p50_ms"], 2),
    }
    with connection.cursor() as cursor:
        cursor.execute("SHOW server_version")
        result["postgresql"] = cursor.fetchone()[0]
    out = Path(settings.ROOT_DIR) / ".data" / "bench"
    out.mkdir(parents=True, exist_ok=True)
    (out / "provisioning.json").write_text(json.dumps(result, indent=2))
    print("\nprovisioning per tenant (ms)       n     p50     p95    mean")
    for name in ("ours", "plain", "floor"):
        r = result[name]
        print(f"  {name:30} {r['n']:5} {r['p50_ms']:7} {r['p95_ms']:7} {r['mean_ms']:7}")
    print(f"  plain / ours (p50): {result['ratios']['plain_over_ours_p50']}x   (target >= 5x)")
    print(f"  ours / floor (p50): {result['ratios']['ours_over_floor_p50']}x   (target <= 1.5x)")
    print(f"  ours p50 {result['ours']['p50_ms']} ms (target <= 250 ms); PostgreSQL {result['postgresql']}")
