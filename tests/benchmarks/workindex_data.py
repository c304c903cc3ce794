"""A cross-client work index of many tenants, built by SQL, for benchmarks of what reads the index (the
technician's queue, the SLA sweep).

``build_work_index(tenants=1000, rows_per_tenant=1000)`` writes, in public only:
- one provider and ``tenants`` Tenant rows (bulk SQL; no schemas are created: the index's readers never
  enter a tenant schema, and a schema per tenant would only slow the set-up down);
- ``tenants x rows_per_tenant`` open WorkItem rows (generate_series): 80 % incidents, 10 % service
  requests, 5 % fulfilment tasks, 3 % problems, 2 % changes; 70 % with an SLA deadline spread over
  ``now - 1 day .. now + 7 days`` (about 1 in 8 of those overdue and breached; ``next_escalation_at`` is
  the deadline), 30 % without; 60 % assigned to one of 200 technicians' user ids, with 1 row in 1,000
  assigned to each bench technician; 3 assignment groups per tenant;
- two technicians: ``all_clients`` (every tenant) and ``granted`` (explicit grants to 50 tenants), each a
  member of group 1 of every tenant they may enter (WorkGroupMember);
then VACUUM ANALYZE. Returns the ids the benchmark needs. Run with a transactional database.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from django.db import connection
from django.utils import timezone

from controlplane.accounts.models import ProviderMembership, TenantGrant, User
from controlplane.accounts.services import provider_membership_set, user_create
from controlplane.providers.models import Provider
from tenants.models import Tenant

GRANTED_TENANTS = 50


@dataclass(frozen=True)
class WorkIndexData:
    provider: Provider
    tenant_ids: list[int]
    all_clients: User
    granted: User
    granted_tenant_ids: list[int]
    now: dt.datetime
    rows: int


def build_work_index(
    *, tenants: int = 1000, rows_per_tenant: int = 1000, slug: str = "bench"
) -> WorkIndexData:
    """Build the data set described in the module docstring; ``now`` is the instant deadlines spread around."""
    now = timezone.now()
    provider = Provider.objects.create(name="Bench MSP", slug=f"{slug}-msp")
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO tenants_tenant (schema_name, provider_id, name, slug, time_zone, locale, status,"
            " migration_state, created_at)"
            " SELECT 't_' || %(slug)s || '_' || n, %(provider)s, 'Client ' || n, %(slug)s || '-' || n,"
            " 'UTC', 'en-gb', 'active', '', now() FROM generate_series(1, %(tenants)s) AS n",
            {"slug": slug, "provider": provider.pk, "tenants": tenants},
        )
    tenant_ids = list(Tenant.objects.filter(provider=provider).order_by("pk").values_list("pk", flat=True))
    all_clients = user_create(
        email=f"all@{slug}.example", password="bench-password-1", full_name="All", email_verified=True
    )
    granted = user_create(
        email=f"granted@{slug}.example", password="bench-password-1", full_name="Granted", email_verified=True
    )
    provider_membership_set(user=all_clients, provider=provider, role="technician", all_clients=True)
    membership = provider_membership_set(user=granted, provider=provider, role="technician")
    step = max(1, len(tenant_ids) // GRANTED_TENANTS)
    granted_ids = tenant_ids[::step][:GRANTED_TENANTS]
    TenantGrant.objects.bulk_create(TenantGrant(membership=membership, tenant_id=t) for t in granted_ids)
    assert ProviderMembership.objects.filter(provider=provider).count() == 2
    with connection.cursor() as cursor:
        # Row i of tenant t: n = global row number; the record id is a fresh UUID.
        cursor.execute(
            "INSERT INTO workindex_workitem (tenant_id, provider_id, record_type, record_id, number, title,"
            " state, priority, assigned_person_id, assigned_user_id, assignment_group_id, opened_at,"
            " updated_at, response_due_at, resolution_due_at, sla_due_at, sla_paused, breached,"
            " next_escalation_at)"
            " SELECT t.id, %(provider)s, kind.record_type, gen_random_uuid(), kind.prefix || lpad(i::text, 7, '0'),"
            "  'Benchmark record ' || n, 'new', 1 + n %% 5,"
            "  CASE WHEN assignee IS NOT NULL THEN md5(t.id || ':person:' || assignee)::uuid END, assignee,"
            "  md5(t.id || ':group:' || (n %% 3 + 1))::uuid, %(now)s - make_interval(mins => ((n * 7) %% 43200)::int),"
            "  %(now)s, NULL, due, due, false, COALESCE(due < %(now)s, false), due"
            " FROM tenants_tenant t, generate_series(1, %(rows)s) AS i,"
            " LATERAL (SELECT (t.id::bigint * %(rows)s + i) AS n) g,"
            " LATERAL (SELECT CASE WHEN n %% 100 < 80 THEN 'incident' WHEN n %% 100 < 90 THEN 'service_request'"
            "   WHEN n %% 100 < 95 THEN 'fulfilment_task' WHEN n %% 100 < 98 THEN 'problem' ELSE 'change' END"
            "   AS record_type,"
            "   CASE WHEN n %% 100 < 80 THEN 'INC' WHEN n %% 100 < 90 THEN 'REQ' WHEN n %% 100 < 95 THEN 'SCTASK'"
            "   WHEN n %% 100 < 98 THEN 'PRB' ELSE 'CHG' END AS prefix) kind,"
            " LATERAL (SELECT CASE WHEN (n * 13) %% 10 < 7"
            "   THEN %(now)s + make_interval(mins => ((n * 7919) %% 11520)::int - 1440) END AS due) d,"
            " LATERAL (SELECT CASE WHEN n %% 1000 = 1 THEN %(all_clients)s WHEN n %% 1000 = 2 THEN %(granted)s"
            "   WHEN (n * 17) %% 10 < 6 THEN 1000000 + (n %% 200) END AS assignee) a"
            " WHERE t.provider_id = %(provider)s",
            {
                "provider": provider.pk,
                "rows": rows_per_tenant,
                "now": now,
                "all_clients": all_clients.pk,
                "granted": granted.pk,
            },
        )
        cursor.execute(
            "INSERT INTO workindex_workgroupmember (tenant_id, group_id, user_id)"
            " SELECT t.id, md5(t.id || ':group:1')::uuid, %(all)s FROM tenants_tenant t"
            " WHERE t.provider_id = %(provider)s"
            " UNION ALL SELECT g.tenant_id, md5(g.tenant_id || ':group:1')::uuid, %(granted)s"
            " FROM accounts_tenantgrant g WHERE g.membership_id = %(membership)s",
            {
                "all": all_clients.pk,
                "granted": granted.pk,
                "provider": provider.pk,
                "membership": membership.pk,
            },
        )
        for table in (
            "tenants_tenant",
            "accounts_tenantgrant",
            "workindex_workitem",
            "workindex_workgroupmember",
        ):
            cursor.execute(f"VACUUM ANALYZE {table}")
    return WorkIndexData(
        provider=provider,
        tenant_ids=tenant_ids,
        all_clients=all_clients,
        granted=granted,
        granted_tenant_ids=granted_ids,
        now=now,
        rows=len(tenant_ids) * rows_per_tenant,
    )
