"""Benchmark: server time of the main console and portal pages with 100,000 incidents in one tenant.

Data (built once per run, about a minute here; kept and reused by a run with ``--reuse-db`` when the
tenant, its schema, its row count and its migration state still match): one provider, one tenant
``bench-pages`` with BENCH_PAGES_INCIDENTS incidents (default 100,000) written by SQL over about two
years (older ones mostly closed, the newest 10,000 mostly open), 50 technicians, 3,000 callers, 8
assignment groups, 10 categories, priorities from impact x urgency, 85 % assigned; comments on 30 %
of the incidents (1-3 each); the search documents (``incident_search_refresh``) and the work index rows
of the open incidents (``incident_open_work_entries`` + ``workindex_upsert_many``) and the dashboards'
daily rollup (``workindex_rollup_rebuild``) built by the production code. One more incident is opened
through the services with 10 comments and three state changes: the detail page's subject. The bench technician (all clients) is a member of two groups; the
bench end user is the caller of 1 incident in 500.

Each page is requested through Django's test client on its real host (console ``localhost``, portal
``bench-pages.localhost``): 3 warm-up requests, then BENCH_PAGES_REQUESTS (default 30) timed ones;
p50/p95 in ms, the number of queries of one request, the mean time spent in SQL per request and the
slowest statement (in the JSON). Target (issue 5): p95 <= 100 ms per page.
Written to .data/bench/pages.json. The page list (PAGES) is the one place to add a page.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.db import connection
from django.db.models import Sum
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django_tenants.utils import tenant_context
from psycopg import sql

from controlplane.accounts.models import User
from controlplane.accounts.services import provider_membership_set, tenant_membership_set, user_create
from controlplane.providers.models import Provider
from controlplane.workindex.models import TenantDailyRollup
from controlplane.workindex.services import (
    workindex_group_member_set,
    workindex_rollup_rebuild,
    workindex_upsert_many,
)
from modules.incidents.models import Incident
from modules.incidents.services import (
    incident_comment,
    incident_create,
    incident_search_refresh,
    incident_transition,
)
from modules.incidents.workindex import incident_open_work_entries
from modules.people.models import Group, Person
from modules.people.services import person_for_user
from modules.records.actor import Actor
from tenants.models import Tenant
from tenants.services import tenant_provision
from tenants.template import expected_migration_state

from .measure import summary, timed, write_result

INCIDENTS = int(os.environ.get("BENCH_PAGES_INCIDENTS", "100000"))
REQUESTS = int(os.environ.get("BENCH_PAGES_REQUESTS", "30"))
SLUG = "bench-pages"
TECH_EMAIL = "tech@bench-pages.example"
END_USER_EMAIL = "user@bench-pages.example"
PASSWORD = "bench-password-1"
TARGET_MS = 100.0
# The schema of the last build, so a rebuild can drop one whose public rows a later test flushed.
SCHEMA_NOTE = Path(settings.ROOT_DIR) / ".data" / "bench" / "pages-schema.txt"
CATEGORIES = [
    "network", "hardware", "software", "email", "access", "printing", "database", "telephony", "security",
    "inquiry",
]  # fmt: skip
WORDS = ["printer", "vpn", "outlook", "password", "laptop", "wifi", "teams", "share", "backup", "invoice"]

# (name, host, path): "console" is localhost as the technician, "portal" the tenant's host as the end user.
# {slug} and {detail} (the detail page's incident number) are filled in.
PAGES = [
    ("provider home", "console", "/"),
    ("queue", "console", "/queue/"),
    ("incident list", "console", "/t/{slug}/incidents/"),
    ("incident list filtered", "console", "/t/{slug}/incidents/?state=in_progress&priority=2"),
    ("incident list open, mine", "console", "/t/{slug}/incidents/?open_only=on&mine=on"),
    ("incident list sorted", "console", "/t/{slug}/incidents/?sort=-priority"),
    ("incident list page 1000", "console", "/t/{slug}/incidents/?page=1000"),
    ("incident detail", "console", "/t/{slug}/incidents/{detail}/"),
    ("search", "console", "/t/{slug}/search/?q=printer"),
    ("requests", "console", "/t/{slug}/requests/"),
    ("problems", "console", "/t/{slug}/problems/"),
    ("changes", "console", "/t/{slug}/changes/"),
    ("cmdb", "console", "/t/{slug}/cmdb/"),
    ("knowledge", "console", "/t/{slug}/knowledge/"),
    ("known errors", "console", "/t/{slug}/problems/known-errors/"),
    ("tenant dashboard", "console", "/t/{slug}/dashboard/"),
    ("tenant dashboard, 90 days", "console", "/t/{slug}/dashboard/?days=90"),
    ("cross-client dashboard", "console", "/dashboard/"),
    ("client switcher", "console", "/switch/?q=bench"),
    ("portal home", "portal", "/"),
    ("portal incident", "portal", "/incidents/{portal_detail}/"),
    ("portal my requests", "portal", "/requests/"),
    ("portal catalog", "portal", "/catalog/"),
    ("portal knowledge", "portal", "/knowledge/?q=printer"),
]


@dataclass(frozen=True)
class PagesData:
    tenant: Tenant
    technician: User
    end_user: User
    detail: str  # number of the incident with a timeline
    portal_detail: str  # number of one of the end user's incidents
    build_seconds: float | None  # None when reused


def _sql(statement: str, params: dict[str, Any] | None = None) -> None:
    with connection.cursor() as cursor:
        cursor.execute(statement, params or {})


def _populate(tech_ids: list[str], caller_ids: list[str], group_ids: list[str], end_user_person: str) -> None:
    """INCIDENTS incidents and their comments in the current tenant schema, by SQL."""
    _sql(
        "INSERT INTO incidents_incident (id, created_at, updated_at, number, opened_at, short_description,"
        " description, category, subcategory, contact_type, impact, urgency, priority, state, hold_reason,"
        " resolution_code, resolution_notes, reassignment_count, reopen_count, source_problem_id,"
        " source_rfc, source_cmdb_ci, source_fields, caller_id, opened_by_id, assigned_to_id,"
        " assignment_group_id, resolved_at, closed_at)"
        " SELECT gen_random_uuid(), opened, opened + interval '1 hour', 'INC' || lpad(n::text, 7, '0'), opened,"
        "  initcap((%(words)s::text[])[1 + n %% 10]) || ' problem reported by user ' || n,"
        "  'The ' || (%(words)s::text[])[1 + (n * 7) %% 10] || ' stopped working after the update.',"
        "  (%(categories)s::text[])[1 + (n * 3) %% 10], '', "
        "  (ARRAY['phone','email','self_service','chat'])[1 + n %% 4], imp, urg, LEAST(5, imp + urg - 1),"
        "  st, CASE WHEN st = 'on_hold' THEN 'awaiting_user_info' ELSE '' END,"
        "  CASE WHEN st IN ('resolved', 'closed') THEN 'solved_permanently' ELSE '' END,"
        "  CASE WHEN st IN ('resolved', 'closed') THEN 'Fixed.' ELSE '' END, n %% 3, 0, '', '', '', '{}',"
        "  CASE WHEN n %% 500 = 0 THEN %(end_user)s::uuid ELSE (%(callers)s::uuid[])[1 + (n * 7) %% 3000] END,"
        "  (%(techs)s::uuid[])[1 + n %% 50],"
        "  CASE WHEN (n * 13) %% 100 < 85 THEN (%(techs)s::uuid[])[1 + (n * 11) %% 50] END,"
        "  CASE WHEN (n * 17) %% 100 < 95 THEN (%(groups)s::uuid[])[1 + n %% 8] END,"
        "  CASE WHEN st IN ('resolved', 'closed') THEN opened + interval '1 day' END,"
        "  CASE WHEN st = 'closed' THEN opened + interval '4 days' END"
        " FROM generate_series(1, %(count)s) AS n,"
        " LATERAL (SELECT now() - make_interval(mins => (%(count)s - n) * 9) AS opened,"
        "   1 + (n * 31) %% 3 AS imp, 1 + (n * 17) %% 3 AS urg, (n * 7919) %% 100 AS h) x,"
        " LATERAL (SELECT CASE WHEN n > %(count)s - 10000 THEN"
        "   CASE WHEN h < 25 THEN 'new' WHEN h < 70 THEN 'in_progress' WHEN h < 80 THEN 'on_hold'"
        "   ELSE 'resolved' END"
        "   ELSE CASE WHEN h < 88 THEN 'closed' WHEN h < 93 THEN 'canceled' WHEN h < 95 THEN 'resolved'"
        "   WHEN h < 98 THEN 'in_progress' WHEN h < 99 THEN 'on_hold' ELSE 'new' END END AS st) s",
        {
            "words": WORDS,
            "categories": CATEGORIES,
            "callers": caller_ids,
            "techs": tech_ids,
            "groups": group_ids,
            "end_user": end_user_person,
            "count": INCIDENTS,
        },
    )
    _sql(
        "INSERT INTO records_comment (id, created_at, updated_at, record_type, record_id, author_id, body,"
        " is_work_note)"
        " SELECT gen_random_uuid(), i.opened_at + make_interval(mins => k * 30), i.opened_at"
        "  + make_interval(mins => k * 30), 'incident', i.id, i.assigned_to_id,"
        "  'Update ' || k || ' on ' || i.number, k %% 2 = 0"
        " FROM incidents_incident i, generate_series(1, 3) AS k"
        " WHERE hashtext(i.number) %% 10 IN (0, 1, 2, -1, -2) AND k <= 1 + abs(hashtext(i.number)) %% 3",
    )
    _sql(
        "INSERT INTO records_numbersequence (prefix, last_value) VALUES ('INC', %(count)s)"
        " ON CONFLICT (prefix) DO UPDATE SET last_value = EXCLUDED.last_value",
        {"count": INCIDENTS},
    )


def _build() -> PagesData:
    start = time.perf_counter()
    provider = Provider.objects.create(name="Bench pages MSP", slug=SLUG)
    tenant = tenant_provision(provider=provider, name="Bench Pages Ltd", slug=SLUG, time_zone="Europe/London")
    SCHEMA_NOTE.parent.mkdir(parents=True, exist_ok=True)
    SCHEMA_NOTE.write_text(tenant.schema_name)
    technician = user_create(
        email=TECH_EMAIL, password=PASSWORD, full_name="Bench Technician", email_verified=True
    )
    provider_membership_set(user=technician, provider=provider, role="technician", all_clients=True)
    end_user = user_create(
        email=END_USER_EMAIL, password=PASSWORD, full_name="Bench User", email_verified=True
    )
    tenant_membership_set(user=end_user, tenant=tenant, role="end_user")
    with tenant_context(tenant):
        tech_person = person_for_user(
            user_id=technician.pk, display_name="Bench Technician", email=TECH_EMAIL
        )
        user_person = person_for_user(user_id=end_user.pk, display_name="Bench User", email=END_USER_EMAIL)
        others = Person.objects.bulk_create(
            Person(display_name=f"Technician {i}", email=f"tech{i}@bench.example") for i in range(1, 50)
        )
        techs = [tech_person, *others]
        callers = Person.objects.bulk_create(
            Person(display_name=f"Caller {i}", email=f"caller{i}@bench.example") for i in range(3000)
        )
        groups = Group.objects.bulk_create(Group(name=f"Group {i}") for i in range(1, 9))
        for group in groups[:2]:
            group.members.add(tech_person)
            workindex_group_member_set(group_id=group.pk, user_id=technician.pk, member=True)
        _populate(
            [str(p.pk) for p in techs],
            [str(p.pk) for p in callers],
            [str(g.pk) for g in groups],
            str(user_person.pk),
        )
        incident_search_refresh()
        workindex_upsert_many(entries=list(incident_open_work_entries()))
        workindex_rollup_rebuild(days=800)  # the dashboards' daily rollup of the two years of incidents
        actor = Actor(user_id=technician.pk, person=tech_person, role="technician")
        detail = incident_create(
            actor=actor,
            short_description="Printer on floor 3 prints blank pages",
            description="Since this morning every job comes out blank.",
            caller=user_person,
            category="printing",
            assignment_group=groups[0],
            assigned_to=tech_person,
        )
        for i in range(10):
            incident_comment(
                actor=actor, incident=detail, body=f"Step {i}: checked toner", work_note=i % 2 == 0
            )
        incident_transition(actor=actor, incident=detail, action="start")
        incident_transition(actor=actor, incident=detail, action="hold", hold_reason="awaiting_vendor")
        incident_transition(actor=actor, incident=detail, action="resume")
        for table in ("incidents_incident", "records_comment", "records_searchdocument", "people_person"):
            _sql(f"VACUUM ANALYZE {table}")
    _sql("VACUUM ANALYZE workindex_workitem")
    return _data(tenant, build_seconds=round(time.perf_counter() - start, 1), detail=detail.number)


def _data(tenant: Tenant, *, build_seconds: float | None, detail: str) -> PagesData:
    technician = User.objects.get(email=TECH_EMAIL)
    end_user = User.objects.get(email=END_USER_EMAIL)
    with tenant_context(tenant):
        person = Person.objects.get(user_id=end_user.pk)
        portal_detail = Incident.objects.filter(caller=person).order_by("-opened_at").first()
        assert portal_detail is not None
    return PagesData(tenant, technician, end_user, detail, portal_detail.number, build_seconds)


def _reusable() -> Tenant | None:
    """The tenant of an earlier build if everything about it still matches, else None."""
    tenant = Tenant.objects.filter(slug=SLUG).first()
    if tenant is None or tenant.migration_state != expected_migration_state():
        return None
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", [tenant.schema_name])
        if cursor.fetchone() is None:
            return None
    with tenant_context(tenant):
        if Incident.objects.count() != INCIDENTS + 1:
            return None
    opened = TenantDailyRollup.objects.filter(tenant=tenant).aggregate(n=Sum("opened"))["n"] or 0
    if opened < INCIDENTS:
        return None  # built before the dashboards' rollup was part of the data
    return tenant


def _drop() -> None:
    """Remove a previous build: its schema (also one whose public rows a flush removed) and its rows."""
    schemas = set(Tenant.objects.filter(slug=SLUG).values_list("schema_name", flat=True))
    if SCHEMA_NOTE.exists():
        schemas.add(SCHEMA_NOTE.read_text().strip())
    with connection.cursor() as cursor:
        for schema in schemas:
            cursor.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))
        for table in ("workindex_workitem", "workindex_workgroupmember"):
            cursor.execute(
                sql.SQL(
                    "DELETE FROM {} WHERE tenant_id IN (SELECT id FROM tenants_tenant WHERE slug = %s)"
                ).format(sql.Identifier(table)),
                [SLUG],
            )
    Tenant.objects.filter(slug=SLUG).delete()  # the rows only (a queryset delete drops no schema)
    Provider.objects.filter(slug=SLUG).delete()
    User.objects.filter(email__in=[TECH_EMAIL, END_USER_EMAIL]).delete()
    SCHEMA_NOTE.unlink(missing_ok=True)


@pytest.fixture(scope="module")
def pages_data(
    request: pytest.FixtureRequest, django_db_setup: None, django_db_blocker: Any
) -> Iterator[PagesData]:
    """The data set, reused from an earlier run of a kept database (``--reuse-db``), else built."""
    keep = bool(request.config.getoption("reuse_db", False))
    with django_db_blocker.unblock():
        tenant = _reusable()
        if tenant is not None:
            with tenant_context(tenant):
                detail = Incident.objects.order_by("-opened_at").values_list("number", flat=True)[0]
            data = _data(tenant, build_seconds=None, detail=detail)
        else:
            _drop()
            data = _build()
        yield data
        if not keep:
            _drop()


def _client(data: PagesData, host: str) -> Client:
    if host == "console":
        client = Client(HTTP_HOST="localhost")
        client.force_login(data.technician, backend="django.contrib.auth.backends.ModelBackend")
    else:
        client = Client(HTTP_HOST=f"{SLUG}.localhost")
        client.force_login(data.end_user, backend="django.contrib.auth.backends.ModelBackend")
    return client


class SqlTimer:
    """A connection execute wrapper adding up the time spent in SQL and keeping the slowest statement."""

    def __init__(self) -> None:
        self.total_ms = 0.0
        self.slowest: tuple[float, str] = (0.0, "")

    def __call__(self, execute: Any, sql_text: str, params: Any, many: bool, context: Any) -> Any:
        start = time.perf_counter()
        try:
            return execute(sql_text, params, many, context)
        finally:
            elapsed = (time.perf_counter() - start) * 1000.0
            self.total_ms += elapsed
            if elapsed > self.slowest[0]:
                self.slowest = (elapsed, str(sql_text))


@pytest.mark.django_db  # the requests run in a transaction rolled back afterwards; the data is committed
def test_pages_benchmark(pages_data: PagesData) -> None:
    rows: dict[str, dict[str, Any]] = {}
    clients = {host: _client(pages_data, host) for host in ("console", "portal")}
    for name, host, template in PAGES:
        path = template.format(slug=SLUG, detail=pages_data.detail, portal_detail=pages_data.portal_detail)
        client = clients[host]
        for _ in range(3):
            response = client.get(path)
        status = response.status_code
        with CaptureQueriesContext(connection) as queries:
            client.get(path)
        query_count = len(queries)  # now: later requests clear the connection's query log
        sql_timer = SqlTimer()
        with connection.execute_wrapper(sql_timer):
            samples = [timed(lambda: client.get(path)) for _ in range(REQUESTS)]  # noqa: B023
        rows[name] = {
            "path": path,
            "status": status,
            "queries": query_count,
            **summary(samples),
            "sql_mean_ms": round(sql_timer.total_ms / REQUESTS, 1),
            "slowest_sql_ms": round(sql_timer.slowest[0], 1),
            "slowest_sql": sql_timer.slowest[1][:300],
        }
        assert status == 200, f"{name}: {path} answered {status}"
    result: dict[str, Any] = {
        "incidents": INCIDENTS,
        "build_seconds": pages_data.build_seconds,
        "target_p95_ms": TARGET_MS,
        "pages": rows,
    }
    out = write_result("pages", result)
    built = "reused" if pages_data.build_seconds is None else f"built in {pages_data.build_seconds} s"
    print(f"\npages with {INCIDENTS:,} incidents (data {built}); {REQUESTS} requests each, ms")
    print(f"  {'page':28} {'status':>6} {'queries':>7} {'p50':>7} {'p95':>7} {'sql':>7}  (* over target)")
    for name, r in rows.items():
        over = "  *" if r["p95_ms"] > TARGET_MS else ""
        print(
            f"  {name:28} {r['status']:6} {r['queries']:7} {r['p50_ms']:7} {r['p95_ms']:7}"
            f" {r['sql_mean_ms']:7}{over}"
        )
    print("  sql: mean time in SQL per request (the rest is Python and templates); slowest query in the JSON")
    print(f"  target: p95 <= {TARGET_MS:.0f} ms per page; PostgreSQL {result['postgresql']}; {out}")
    print(f"  this machine's Python: {result['cpu_calibration_ms']:.0f} ms for measure.cpu_calibration_ms")
    print(json.dumps({name: r["p95_ms"] for name, r in rows.items()}))
