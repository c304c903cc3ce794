"""Benchmark: one SLA escalation sweep tick over 1,000 tenants with 1,000 open records each, beside a
per-schema loop measured in the same run.

Set-up: ``BENCH_SWEEP_TENANTS`` real tenants (``tenant_provision``, a schema each) with one 24x7 policy
and ``BENCH_SWEEP_ROWS`` running resolution timers each (SQL), and a work index row per timer with the
same ``next_escalation_at`` (what ``sla_refresh`` writes). Two states: none due (every next escalation
in the future) and 1 % due (10 records per tenant, in the timers and in the index alike).

- ours: ``modules.sla.tasks.sla_escalation_sweep``: one query on the index's partial index, then the due
  ids sent as ``sla_escalate_batch_task`` messages of 1,000 ids on the real broker;
- loop: what the sweep would be without the index: list the active tenants, then in each schema
  (``tenant_context``) read the timers due through their own partial index, then send the same messages
  (``escalation_batches_send``).

Ticks alternate (ours, loop) ``BENCH_SWEEP_TICKS`` times per state; the messages are purged after each
tick (no worker runs). Targets (issue 4): ours <= 2 s with 1 % due and <= 20 ms with none due, and >= 20x
faster than the loop. Written to .data/bench/sla_sweep.json.
"""

from __future__ import annotations

import datetime as dt
import os
import time
from collections import defaultdict
from typing import Any

import pytest
from django.db import connection
from django.utils import timezone
from django_tenants.utils import tenant_context
from psycopg import sql

from controlplane.celery import app
from controlplane.providers.models import Provider
from modules.sla.models import BusinessCalendar, Contract, SLAPolicy, SLATimer
from modules.sla.tasks import escalation_batches_send, sla_escalation_sweep
from tenants.models import Tenant
from tenants.services import tenant_provision

from .measure import summary, timed, write_result

TENANTS = int(os.environ.get("BENCH_SWEEP_TENANTS", "1000"))
ROWS = int(os.environ.get("BENCH_SWEEP_ROWS", "1000"))
TICKS = int(os.environ.get("BENCH_SWEEP_TICKS", "20"))
TARGET_DUE_MS, TARGET_IDLE_MS, TARGET_RATIO = 2000.0, 20.0, 20.0


def build(now: dt.datetime) -> list[Tenant]:
    """Provision the tenants and fill each with ROWS running timers and their index rows (none due)."""
    provider = Provider.objects.create(name="Sweep MSP", slug="sweep-msp")
    tenants = []
    for n in range(TENANTS):
        tenant = tenant_provision(provider=provider, name=f"Sweep client {n}", slug=f"sweep-{n}")
        with tenant_context(tenant):
            calendar = BusinessCalendar.objects.create(name="24x7", time_zone="UTC")
            contract = Contract.objects.create(name="Bench", starts_on=dt.date(2026, 1, 1), calendar=calendar)
            policy = SLAPolicy.objects.create(
                contract=contract,
                name="P3",
                record_type="incident",
                resolution_target_minutes=8 * 60,
                business_time=False,
            )
            with connection.cursor() as cursor:
                # Next escalations 1 .. ROWS minutes ahead: nothing is due yet.
                cursor.execute(
                    "INSERT INTO sla_slatimer (record_type, record_id, policy_id, kind, stage, started_at,"
                    " elapsed_business_seconds, target_seconds, due_at, next_escalation_at, computed_at)"
                    " SELECT 'incident', gen_random_uuid(), %(policy)s, 'resolution', 'running', %(now)s, 0,"
                    " 28800, %(now)s + interval '8 hours', %(now)s + make_interval(mins => i), %(now)s"
                    " FROM generate_series(1, %(rows)s) AS i",
                    {"policy": policy.pk, "now": now, "rows": ROWS},
                )
                cursor.execute(
                    sql.SQL(
                        "INSERT INTO public.workindex_workitem (tenant_id, provider_id, record_type, record_id,"
                        " number, title, state, priority, opened_at, updated_at, resolution_due_at,"
                        " sla_due_at, sla_paused, breached, next_escalation_at)"
                        " SELECT %(tenant)s, %(provider)s, 'incident', record_id,"
                        " 'INC' || lpad(id::text, 7, '0'), 'Benchmark incident', 'in_progress', 3, started_at,"
                        " %(now)s, due_at, due_at, false, false, next_escalation_at FROM {}.sla_slatimer"
                    ).format(sql.Identifier(tenant.schema_name)),
                    {"tenant": tenant.pk, "provider": provider.pk, "now": now},
                )
        tenants.append(tenant)
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE workindex_workitem")
        for tenant in tenants:
            cursor.execute(sql.SQL("ANALYZE {}.sla_slatimer").format(sql.Identifier(tenant.schema_name)))
    return tenants


def make_due(tenants: list[Tenant], at: dt.datetime) -> int:
    """Make 1 % of every tenant's timers (and their index rows) due at ``at``. Returns how many."""
    due = 0
    with connection.cursor() as cursor:
        for tenant in tenants:
            cursor.execute(
                sql.SQL(
                    "UPDATE {}.sla_slatimer SET next_escalation_at = %s WHERE id %% 100 = 0 RETURNING record_id"
                ).format(sql.Identifier(tenant.schema_name)),
                [at],
            )
            ids = [row[0] for row in cursor.fetchall()]
            cursor.execute(
                "UPDATE workindex_workitem SET next_escalation_at = %s WHERE record_id = ANY(%s)", [at, ids]
            )
            due += len(ids)
    return due


def loop_tick(now: dt.datetime) -> int:
    """The sweep without the index: every active tenant's schema in turn, then the same messages."""
    groups: dict[tuple[str, str], list[str]] = defaultdict(list)
    for tenant in Tenant.objects.filter(status=Tenant.Status.ACTIVE):
        with tenant_context(tenant):
            rows = SLATimer.objects.filter(next_escalation_at__lte=now).values_list(
                "record_type", "record_id"
            )
            for record_type, record_id in sorted(set(rows)):
                groups[(tenant.schema_name, record_type)].append(str(record_id))
    return escalation_batches_send(groups)


def purge() -> None:
    app.control.purge()


@pytest.mark.django_db(transaction=True)
def test_sla_sweep_benchmark() -> None:
    now = timezone.now()
    started = time.perf_counter()
    tenants = build(now)
    build_seconds = round(time.perf_counter() - started, 1)
    purge()
    result: dict[str, Any] = {"tenants": TENANTS, "rows_per_tenant": ROWS, "build_seconds": build_seconds}
    for state in ("none due", "1% due"):
        if state == "1% due":
            result["due_records"] = make_due(tenants, now - dt.timedelta(minutes=1))
            with connection.cursor() as cursor:
                cursor.execute("ANALYZE workindex_workitem")
        assert sla_escalation_sweep(now=now) == loop_tick(now)  # the same messages either way
        purge()
        ours, loop = [], []
        for _ in range(TICKS):
            ours.append(timed(lambda: sla_escalation_sweep(now=now)))
            purge()
            loop.append(timed(lambda: loop_tick(now)))
            purge()
        result[f"{state}: ours"] = summary(ours)
        result[f"{state}: loop"] = summary(loop)
        result[f"{state}: loop/ours (p50)"] = round(
            result[f"{state}: loop"]["p50_ms"] / max(result[f"{state}: ours"]["p50_ms"], 0.1), 1
        )
    result["broker"] = app.conf.broker_url.split("://")[0]
    path = write_result("sla_sweep", result)
    print(f"\nSLA sweep tick, {TENANTS:,} tenants x {ROWS:,} open records ({build_seconds} s to build) (ms)")
    for state, target in (("none due", TARGET_IDLE_MS), ("1% due", TARGET_DUE_MS)):
        o, lp = result[f"{state}: ours"], result[f"{state}: loop"]
        print(
            f"  {state:9} ours p50 {o['p50_ms']} p95 {o['p95_ms']} (target <= {target})"
            f" | loop p50 {lp['p50_ms']} p95 {lp['p95_ms']} | loop/ours {result[f'{state}: loop/ours (p50)']}x"
            f" (target >= {TARGET_RATIO}x)"
        )
    print(
        f"  due records {result['due_records']:,}; broker {result['broker']}; PostgreSQL {result['postgresql']}"
    )
    print(f"  {path}")
