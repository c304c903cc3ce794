"""The dashboards: exact numbers from known rollup rows, CSV equal to the charts, who sees which tenants,
query counts, well-formed accessible SVG, and the live and rebuilt category counter."""

from __future__ import annotations

import csv
import datetime as dt
import io
import xml.etree.ElementTree as ET
import zoneinfo
from collections.abc import Callable
from typing import Any

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from django_tenants.utils import tenant_context

from conftest import actor_in, make_user
from controlplane.accounts.models import User
from controlplane.accounts.services import provider_membership_set, tenant_grant, tenant_membership_set
from controlplane.dashboards.models import TenantDailyCategory
from controlplane.dashboards.svg import svg_line_chart
from controlplane.dashboards.views import chart_svg
from controlplane.providers.models import Provider
from controlplane.workindex.models import TenantDailyRollup, WorkItem
from controlplane.workindex.services import workindex_rollup_rebuild
from tenants.models import Tenant

SVG = "{http://www.w3.org/2000/svg}"


def rollup_row(tenant: Tenant, day: dt.date, record_type: str = "incident", **counts: int) -> None:
    TenantDailyRollup.objects.create(
        tenant=tenant, provider_id=tenant.provider_id, day=day, record_type=record_type, **counts
    )


def work_item(tenant: Tenant, opened_at: dt.datetime, n: int) -> None:
    WorkItem.objects.create(
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


def category_row(tenant: Tenant, day: dt.date, category: str, opened: int) -> None:
    TenantDailyCategory.objects.create(
        tenant=tenant,
        provider_id=tenant.provider_id,
        day=day,
        record_type="incident",
        category=category,
        opened=opened,
    )


@pytest.fixture
def known(tenant_a: Tenant, tenant_b: Tenant) -> dt.date:
    """Known rows for A (and B, which tech_a must never see). Returns the viewer's today."""
    today = timezone.localdate()
    rollup_row(
        tenant_a,
        today,
        opened=4,
        resolved=2,
        acknowledged=2,
        acknowledge_seconds=3600,
        resolve_seconds=14400,
        sla_met=3,
        sla_breached=1,
        satisfaction_sum=9,
        satisfaction_count=2,
    )
    rollup_row(
        tenant_a, today - dt.timedelta(days=1), "service_request", opened=1, resolved=1, resolve_seconds=36000
    )
    rollup_row(tenant_a, today - dt.timedelta(days=40), opened=100, sla_met=1)
    rollup_row(tenant_a, today - dt.timedelta(days=30), opened=7)  # one day before the 30-day window
    rollup_row(
        tenant_b,
        today,
        opened=50,
        resolved=7,
        resolve_seconds=7,
        sla_breached=5,
        satisfaction_sum=5,
        satisfaction_count=5,
    )
    now = timezone.now()
    for n, hours in enumerate((2, 48, 5 * 24, 10 * 24, 40 * 24, 45 * 24)):
        work_item(tenant_a, now - dt.timedelta(hours=hours), n)
    work_item(tenant_b, now - dt.timedelta(hours=1), 99)
    category_row(tenant_a, today, "hardware", 3)
    category_row(tenant_a, today - dt.timedelta(days=2), "email", 1)
    category_row(tenant_a, today, "", 1)
    category_row(tenant_a, today - dt.timedelta(days=45), "old", 9)
    category_row(tenant_b, today, "network", 20)
    return today


def rows_of(response: Any, key: str) -> list[tuple[object, ...]]:
    return next(item["chart"].rows for item in response.context["charts"] if item["chart"].key == key)


def test_cross_client_numbers_are_exact_and_only_of_entered_tenants(
    known: dt.date, tech_a: User, client_for: Callable[..., Client]
) -> None:
    response = client_for(tech_a).get("/dashboard/")
    assert response.status_code == 200
    volume = rows_of(response, "volume")
    assert len(volume) == 30
    assert volume[0][0] == (known - dt.timedelta(days=29)).isoformat()
    assert volume[-2:] == [((known - dt.timedelta(days=1)).isoformat(), 1, 1), (known.isoformat(), 4, 2)]
    assert sum(int(r[1]) for r in volume) == 5  # type: ignore[call-overload]
    assert rows_of(response, "sla") == [("Acme Corp", 3, 1, 75.0), ("All", 3, 1, 75.0)]
    # (3600 / 2) s = 0.5 h to acknowledge; (14400 + 36000) / 3 s = 4.67 h to resolve.
    assert rows_of(response, "times") == [("Acme Corp", 3, 2, 0.5, 4.67), ("All", 3, 2, 0.5, 4.67)]
    assert rows_of(response, "satisfaction") == [("Acme Corp", 2, 4.5), ("All", 2, 4.5)]
    assert rows_of(response, "backlog") == [
        ("< 1 d", 1),
        ("1-3 d", 1),
        ("3-7 d", 1),
        ("7-30 d", 1),
        ("> 30 d", 2),
    ]
    assert rows_of(response, "categories") == [
        ("hardware", "incident", 3),
        ("(none)", "incident", 1),
        ("email", "incident", 1),
    ]
    body = response.content.decode()
    assert "Globex" not in body and "network" not in body
    assert response.context["summary"]["sla_percent"] == 75.0


def test_a_tenant_role_elsewhere_adds_nothing_to_the_cross_client_numbers(
    known: dt.date, tech_a: User, tenant_b: Tenant, client_for: Callable[..., Client]
) -> None:
    # tech_a (granted A) is also an end user of B: they may enter B's portal and console pages as an end
    # user, but B's numbers are not theirs to see as provider staff.
    tenant_membership_set(user=tech_a, tenant=tenant_b, role="end_user")
    response = client_for(tech_a).get("/dashboard/")
    assert response.status_code == 200
    assert sum(int(r[1]) for r in rows_of(response, "volume")) == 5  # type: ignore[call-overload]
    body = response.content.decode()
    assert "Globex" not in body and "network" not in body
    assert client_for(tech_a).get("/dashboard/", {"client": "globex"}).status_code == 422


def test_ninety_days_and_the_client_filter(
    known: dt.date, tech_ab: User, client_for: Callable[..., Client]
) -> None:
    client = client_for(tech_ab)
    both = client.get("/dashboard/", {"days": 90})
    assert len(rows_of(both, "volume")) == 90
    assert sum(int(r[1]) for r in rows_of(both, "volume")) == 5 + 100 + 7 + 50  # type: ignore[call-overload]
    assert rows_of(both, "sla") == [("Acme Corp", 4, 1, 80.0), ("Globex", 0, 5, 0.0), ("All", 4, 6, 40.0)]
    assert rows_of(both, "satisfaction")[-1] == ("All", 7, 2.0)
    only_b = client.get("/dashboard/", {"client": "globex"})
    assert rows_of(only_b, "sla") == [("Globex", 0, 5, 0.0), ("All", 0, 5, 0.0)]
    assert rows_of(only_b, "backlog")[0] == ("< 1 d", 1)
    assert rows_of(only_b, "categories") == [("network", "incident", 20)]


def test_a_client_the_technician_may_not_enter_is_refused(
    known: dt.date, tech_a: User, client_for: Callable[..., Client]
) -> None:
    response = client_for(tech_a).get("/dashboard/", {"client": "globex"})
    assert response.status_code == 422
    assert "Globex" not in response.content.decode()
    assert rows_of(response, "sla")[0][0] == "Acme Corp"  # the default view, never B's numbers
    csv_response = client_for(tech_a).get("/dashboard/csv/sla/", {"client": "globex"})
    assert csv_response.status_code == 422


def parse_csv(response: Any) -> list[list[str]]:
    return list(csv.reader(io.StringIO(response.content.decode())))


@pytest.mark.parametrize("key", ["volume", "sla", "times", "satisfaction", "backlog", "categories"])
def test_csv_is_exactly_the_numbers_of_the_chart(
    key: str, known: dt.date, tech_a: User, client_for: Callable[..., Client]
) -> None:
    client = client_for(tech_a)
    page = client.get("/dashboard/", {"days": 90})
    chart = next(item for item in page.context["charts"] if item["chart"].key == key)
    assert chart["csv"] == f"csv/{key}/?days=90"
    response = client.get(f"/dashboard/csv/{key}/", {"days": 90})
    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    start = (known - dt.timedelta(days=89)).strftime("%Y%m%d")
    assert response["Content-Disposition"] == (
        f'attachment; filename="all-clients-{key}-{start}-{known:%Y%m%d}.csv"'
    )
    expected = [list(chart["chart"].columns)] + [
        ["" if v is None else str(v) for v in row] for row in chart["chart"].rows
    ]
    assert parse_csv(response) == expected
    assert f'href="csv/{key}/?days=90"' in page.content.decode()


def test_unknown_chart_csv_is_404(tech_a: User, client_for: Callable[..., Client]) -> None:
    assert client_for(tech_a).get("/dashboard/csv/bogus/").status_code == 404


def test_end_users_are_denied_the_cross_client_dashboard(
    known: dt.date, end_user_a: User, client_for: Callable[..., Client]
) -> None:
    client = client_for(end_user_a)
    assert client.get("/dashboard/").status_code == 403
    assert client.get("/dashboard/csv/volume/").status_code == 403
    assert client_for(None).get("/dashboard/").status_code == 302


def test_charts_are_well_formed_accessible_svg(
    known: dt.date, tech_ab: User, client_for: Callable[..., Client]
) -> None:
    response = client_for(tech_ab).get("/dashboard/")
    for item in response.context["charts"]:
        root = ET.fromstring(str(chart_svg(item["chart"])))  # noqa: S314 - our own markup
        assert root.tag == f"{SVG}svg"
        assert root.get("role") == "img"
        title, desc = root.find(f"{SVG}title"), root.find(f"{SVG}desc")
        assert title is not None and desc is not None
        assert root.get("aria-labelledby") == f"{title.get('id')} {desc.get('id')}"
        assert title.text == item["chart"].title
        assert str(item["svg"]) in response.content.decode()
    assert "<script" not in response.content.decode().split("<main", 1)[-1]


def test_a_count_axis_has_whole_gridlines_even_for_small_counts() -> None:
    svg = svg_line_chart(
        chart_id="c", title="t", desc="d", x_labels=["a", "b"], series=[("Opened", [0.0, 1.0])], counts=True
    )
    labels = [t.text for t in ET.fromstring(str(svg)).iter(f"{SVG}text")]  # noqa: S314 - our own markup
    assert [x for x in labels if x and x.isdigit()][:6] == ["0", "1", "2", "3", "4", "5"]
    assert not any(x and "." in x for x in labels)


def grant_many(user: User, provider: Provider, count: int, today: dt.date, prefix: str) -> None:
    """``count`` tenants (control-plane rows only: the dashboard reads no schema) granted to ``user``,
    each with rollup, category and work index rows."""
    membership = provider_membership_set(user=user, provider=provider, role="technician")
    now = timezone.now()
    for i in range(count):
        tenant = Tenant.objects.create(
            provider=provider,
            name=f"{prefix} {i:02d}",
            slug=f"{prefix}-{i:02d}",
            schema_name=f"t_{prefix}_{i:02d}",
        )
        tenant_grant(membership=membership, tenant=tenant)
        rollup_row(
            tenant, today, opened=i + 1, resolved=i, sla_met=1, satisfaction_sum=4, satisfaction_count=1
        )
        rollup_row(tenant, today - dt.timedelta(days=3), "problem", opened=1)
        category_row(tenant, today, f"cat {i}", i + 1)
        work_item(tenant, now - dt.timedelta(days=i), i)


def test_cross_client_query_count_is_the_same_for_1_and_30_tenants(
    provider: Provider, client_for: Callable[..., Client]
) -> None:
    today = timezone.localdate()
    pages, csvs = [], []
    for n in (1, 30):
        user = make_user(f"tech{n}@northwind.example")
        grant_many(user, provider, n, today, prefix=f"c{n}")
        client = client_for(user)
        client.get("/dashboard/")  # the first request of a session may write it
        with CaptureQueriesContext(connection) as queries:
            response = client.get("/dashboard/", {"days": 90})
        assert response.status_code == 200
        assert len(rows_of(response, "sla")) == min(n, 20) + 1
        assert rows_of(response, "sla")[-1] == ("All", n, 0, 100.0)
        pages.append(len(queries))
        with CaptureQueriesContext(connection) as queries:
            assert client.get("/dashboard/csv/sla/").status_code == 200
        csvs.append(len(queries))
    assert pages[0] == pages[1] and csvs[0] == csvs[1], (pages, csvs)
    # 30 clients: the 19 busiest (c30 29 .. c30 11, one resolution more each) by name, 11 summed.
    sla = rows_of(response, "sla")
    assert [row[0] for row in sla[:19]] == [f"c30 {i:02d}" for i in range(11, 30)]
    assert sla[19] == ("11 other clients", 11, 0, 100.0)
    assert rows_of(response, "times")[19][:2] == ("11 other clients", sum(range(11)))


def test_tenant_dashboard_shows_that_tenant_by_record_type(
    known: dt.date, tech_a: User, tenant_a: Tenant, client_for: Callable[..., Client]
) -> None:
    response = client_for(tech_a).get("/t/acme/dashboard/", {"days": 90})
    assert response.status_code == 200
    assert rows_of(response, "sla") == [
        ("Incident", 4, 1, 80.0),
        ("Problem", 0, 0, None),
        ("Service request", 0, 0, None),
        ("All", 4, 1, 80.0),
    ]
    assert rows_of(response, "times")[2] == ("Service request", 1, 0, None, 10.0)
    assert rows_of(response, "categories")[0] == ("old", "incident", 9)
    assert "Globex" not in response.content.decode()
    # B's dashboard is B's tenant: tech_a has no grant there (the routing middleware answers 404).
    assert client_for(tech_a).get("/t/globex/dashboard/").status_code == 404
    csv_response = client_for(tech_a).get("/t/acme/dashboard/csv/times/", {"days": 90})
    assert parse_csv(csv_response)[3] == ["Service request", "1", "0", "", "10.0"]
    assert csv_response["Content-Disposition"].startswith('attachment; filename="acme-times-')


def test_tenant_dashboard_is_refused_to_end_users(
    known: dt.date, end_user_a: User, client_for: Callable[..., Client]
) -> None:
    assert client_for(end_user_a).get("/t/acme/dashboard/").status_code == 403
    assert client_for(end_user_a).get("/t/acme/dashboard/csv/sla/").status_code == 403
    admin = make_user("admin@acme.example")
    tenant_membership_set(user=admin, tenant=Tenant.objects.get(slug="acme"), role="client_admin")
    response = client_for(admin).get("/t/acme/dashboard/")
    assert response.status_code == 200
    assert rows_of(response, "sla")[-1] == ("All", 3, 1, 75.0)


def test_tenant_dashboard_query_count_is_fixed(
    tech_a: User, tenant_a: Tenant, client_for: Callable[..., Client]
) -> None:
    today = dt.datetime.now(zoneinfo.ZoneInfo(tenant_a.time_zone)).date()
    client = client_for(tech_a)
    client.get("/t/acme/dashboard/")
    counts = []
    for extra in (1, 30):
        TenantDailyRollup.objects.filter(tenant=tenant_a).delete()
        WorkItem.objects.filter(tenant=tenant_a).delete()
        TenantDailyCategory.objects.filter(tenant=tenant_a).delete()
        for i in range(extra):
            rollup_row(tenant_a, today - dt.timedelta(days=i), opened=1, resolved=1, sla_met=1)
            category_row(tenant_a, today - dt.timedelta(days=i), f"c{i}", 1)
            work_item(tenant_a, timezone.now() - dt.timedelta(days=i), i)
        with CaptureQueriesContext(connection) as queries:
            response = client.get("/t/acme/dashboard/")
        assert response.status_code == 200
        assert sum(int(r[1]) for r in rows_of(response, "volume")) == extra  # type: ignore[call-overload]
        counts.append(len(queries))
    assert counts[0] == counts[1], counts


def test_category_counter_live_equals_rebuild(tenant_a: Tenant, tech_a: User) -> None:
    from modules.incidents.services import incident_create, incident_update

    with tenant_context(tenant_a):
        actor = actor_in(tenant_a, tech_a)
        first = incident_create(actor=actor, short_description="printer", category="hardware")
        incident_create(actor=actor, short_description="mail", category="email")
        incident_create(actor=actor, short_description="other")
        incident_update(actor=actor, incident=first, category="network")
        day = first.opened_at.astimezone(dt.UTC).date()

        def counts() -> set[tuple[str, int]]:
            return {
                (row.category, row.opened)
                for row in TenantDailyCategory.objects.filter(tenant=tenant_a, opened__gt=0)
            }

        live = counts()
        assert live == {("network", 1), ("email", 1), ("", 1)}
        TenantDailyCategory.objects.filter(tenant=tenant_a).delete()
        workindex_rollup_rebuild(days=30)
        assert counts() == live
        assert {row.day for row in TenantDailyCategory.objects.filter(tenant=tenant_a)} == {day}


def test_service_requests_count_once_per_catalog_category_live_and_rebuilt(
    tenant_a: Tenant, tech_a: User
) -> None:
    from modules.requests.services import catalog_category_create, catalog_item_create, request_submit

    with tenant_context(tenant_a):
        actor = actor_in(tenant_a, tech_a)
        hardware = catalog_category_create(actor=actor, name="Hardware")
        access = catalog_category_create(actor=actor, name="Access")
        laptop = catalog_item_create(actor=actor, name="Laptop", category=hardware)
        mouse = catalog_item_create(actor=actor, name="Mouse", category=hardware)
        vpn = catalog_item_create(actor=actor, name="VPN", category=access)
        request_submit(actor=actor, items=[{"catalog_item": laptop}, {"catalog_item": mouse}])
        request_submit(actor=actor, items=[{"catalog_item": vpn}, {"catalog_item": laptop}])

        def counts() -> set[tuple[str, str, int]]:
            rows = TenantDailyCategory.objects.filter(tenant=tenant_a, opened__gt=0)
            return {(row.record_type, row.category, row.opened) for row in rows}

        live = counts()
        assert live == {("service_request", "Hardware", 2), ("service_request", "Access", 1)}
        TenantDailyCategory.objects.filter(tenant=tenant_a).delete()
        workindex_rollup_rebuild(days=30)
        assert counts() == live


def test_htmx_gets_only_the_charts(known: dt.date, tech_a: User, client_for: Callable[..., Client]) -> None:
    partial = client_for(tech_a).get("/dashboard/", {"days": 90}, HTTP_HX_REQUEST="true")
    text = partial.content.decode()
    assert partial.status_code == 200
    assert text.startswith('<div id="dashboard-body">') and "<html" not in text and "<form" not in text
    assert 'href="csv/sla/?days=90"' in text
