"""The console shell: static files, the header (current client, switcher, search), the provider home,
the client switcher (access, recent clients, section kept) and the profile page."""

from __future__ import annotations

import datetime as dt
import re
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from controlplane.accounts.models import User
from controlplane.accounts.services import provider_membership_set, tenant_grant
from controlplane.console.middleware import RECENT_SESSION_KEY
from controlplane.console.selectors import client_overview, switch_path, tenant_switch_candidates
from controlplane.providers.models import Provider
from controlplane.workindex.models import WorkItem
from tenants.models import Tenant

NOW = dt.datetime(2025, 6, 2, 12, 0, tzinfo=dt.UTC)
HOUR = dt.timedelta(hours=1)


def work(
    tenant: Tenant, *, breached: bool = False, due: dt.datetime | None = None, updated: dt.datetime = NOW
) -> WorkItem:
    """One open record of ``tenant`` in the work index."""
    return WorkItem.objects.create(
        tenant=tenant,
        provider_id=tenant.provider_id,
        record_type="incident",
        record_id=uuid.uuid4(),
        number=f"INC{uuid.uuid4().int % 10**7:07d}",
        title="Printer on fire",
        state="new",
        opened_at=updated - HOUR,
        updated_at=updated,
        sla_due_at=due,
        breached=breached,
    )


def bare_tenant(provider: Provider, n: int) -> Tenant:
    """A tenant row without a schema: enough for control-plane pages, which never enter it."""
    return Tenant.objects.create(
        provider=provider, name=f"Client {n:02d}", slug=f"client-{n:02d}", schema_name=f"t_bare{n:02d}"
    )


def test_static_files_are_served(client_for: Callable[..., Client]) -> None:
    client = client_for(None)
    css = client.get("/static/app.css")
    js = client.get("/static/app.js")
    assert css.status_code == js.status_code == 200
    body = b"".join(css.streaming_content).decode()  # type: ignore[attr-defined]
    assert ".table-wrap" in body and "prefers-reduced-motion" in body and ".skip-link" in body
    assert "Intl.DateTimeFormat" in b"".join(js.streaming_content).decode()  # type: ignore[attr-defined]


def test_tenant_page_header_names_the_client_first(
    client_for: Callable[..., Client], tenant_a: Tenant, tech_a: User
) -> None:
    page = client_for(tech_a).get("/t/acme/incidents/")
    body = page.content.decode()
    assert page.status_code == 200
    assert re.search(r"<title>Acme Corp · ", body)
    assert '<a class="skip-link" href="#main">Skip to content</a>' in body
    assert '<main id="main" tabindex="-1">' in body
    assert 'class="client-chip chip-' in body and "Current client: </span>Acme Corp</a>" in body
    assert 'action="/t/acme/search/"' in body and 'name="q"' in body
    assert 'href="/static/app.css"' in body and 'src="/static/app.js"' in body
    assert "<style>" not in body.split("</head>")[0]
    assert 'aria-keyshortcuts="Control+K Meta+K"' in body


def test_home_lists_counts_from_one_grouped_query(
    client_for: Callable[..., Client], tenant_a: Tenant, tenant_b: Tenant, tech_ab: User
) -> None:
    work(tenant_a, breached=True, due=NOW - HOUR, updated=NOW - 3 * HOUR)
    work(tenant_a, due=NOW + 2 * HOUR, updated=NOW - HOUR)
    work(tenant_a, due=NOW + 6 * HOUR)
    work(tenant_a)
    rows = client_overview(user=tech_ab, now=NOW)
    assert [(r.tenant.slug, r.open, r.breached, r.due_soon, r.last_activity) for r in rows] == [
        ("acme", 4, 1, 1, NOW),
        ("globex", 0, 0, 0, None),
    ]
    by_open = client_overview(user=tech_ab, now=NOW, sort="open")
    assert [r.tenant.slug for r in by_open] == ["acme", "globex"]
    assert [r.tenant.slug for r in client_overview(user=tech_ab, now=NOW, q="GLOB")] == ["globex"]
    page = client_for(tech_ab).get("/?sort=breached")
    body = page.content.decode()
    assert page.status_code == 200
    assert body.index('data-client="acme"') < body.index('data-client="globex"')
    assert '<div class="table-wrap">' in body and 'aria-sort="descending"' in body


def test_home_never_shows_a_client_the_user_may_not_enter(
    client_for: Callable[..., Client], tenant_a: Tenant, tenant_b: Tenant, tech_a: User
) -> None:
    work(tenant_b, breached=True)
    assert [r.tenant.slug for r in client_overview(user=tech_a, now=NOW)] == ["acme"]
    body = client_for(tech_a).get("/").content.decode()
    assert "Globex" not in body and "globex" not in body


def test_home_issues_the_same_queries_with_1_and_30_clients(
    client_for: Callable[..., Client], provider: Provider, tenant_a: Tenant, tech_a: User
) -> None:
    owner = User.objects.create_user(email="owner@northwind.example", password="x" * 12)
    provider_membership_set(user=owner, provider=provider, role="owner")
    client = client_for(owner)
    work(tenant_a, breached=True, due=NOW - HOUR)
    client.get("/")  # session bound to the host on first use
    with CaptureQueriesContext(connection) as one:
        assert client.get("/").content.decode().count("<tr data-client=") == 1
    for n in range(29):
        tenant = bare_tenant(provider, n)
        work(tenant, due=timezone.now() + HOUR)
        work(tenant)
    with CaptureQueriesContext(connection) as thirty:
        assert client.get("/").content.decode().count("<tr data-client=") == 30
    assert len(one) == len(thirty)


def test_switcher_lists_only_enterable_clients_and_filters(
    client_for: Callable[..., Client], tenant_a: Tenant, tenant_b: Tenant, tech_a: User
) -> None:
    client = client_for(tech_a)
    everything = client.get("/switch/", {"q": ""}).content.decode()
    searched = client.get("/switch/", {"q": "glob"}).content.decode()
    by_slug = client.get("/switch/", {"q": "globex"}, HTTP_HX_REQUEST="true").content.decode()
    assert 'data-client="acme"' in everything
    for body in (everything, searched, by_slug):
        assert "Globex" not in body
        assert 'data-client="globex"' not in body and "/t/globex/" not in body
    assert [t.slug for t in tenant_switch_candidates(user=tech_a, q="")] == ["acme"]
    assert tenant_switch_candidates(user=tech_a, q="glob") == []
    # Even a recent-list entry for a client the user may not enter (a revoked grant) is never listed.
    assert [t.slug for t in tenant_switch_candidates(user=tech_a, recent_ids=[tenant_b.pk])] == ["acme"]


def test_switcher_htmx_answers_the_list_alone_and_plain_get_a_page(
    client_for: Callable[..., Client], tenant_a: Tenant, tenant_b: Tenant, tech_ab: User
) -> None:
    client = client_for(tech_ab)
    partial = client.get("/switch/", {"q": "ac", "from": "/t/globex/incidents/"}, HTTP_HX_REQUEST="true")
    page = client.get("/switch/", {"q": "ac", "from": "/t/globex/incidents/"})
    assert "<html" not in partial.content.decode()
    assert '<li role="option" id="switch-opt-1"' in partial.content.decode()
    assert 'href="/t/acme/incidents/"' in partial.content.decode()
    assert (
        "<html" in page.content.decode()
        and '<a href="/t/acme/incidents/">Acme Corp</a>' in page.content.decode()
    )
    assert "Globex</a>" not in page.content.decode().split("<main", 1)[1]


def test_switch_keeps_the_section_when_the_client_has_it() -> None:
    assert switch_path(slug="globex", from_path="/t/acme/incidents/INC0000042/") == "/t/globex/incidents/"
    assert switch_path(slug="globex", from_path="/t/acme/cmdb/ci/123/") == "/t/globex/cmdb/"
    assert switch_path(slug="globex", from_path="/t/acme/search/") == "/t/globex/search/"
    assert switch_path(slug="globex", from_path="/t/acme/attachments/1/") == "/t/globex/"
    assert switch_path(slug="globex", from_path="/me/tokens/") == "/t/globex/"
    assert switch_path(slug="globex", from_path="https://evil.example/t/a/incidents/") == "/t/globex/"


def test_recent_clients_come_first_and_keep_five(
    client_for: Callable[..., Client], provider: Provider, tenant_a: Tenant, tenant_b: Tenant, tech_ab: User
) -> None:
    client = client_for(tech_ab)
    assert client.get("/t/globex/incidents/").status_code == 200
    assert client.get("/t/acme/incidents/").status_code == 200
    assert client.get("/t/globex/incidents/").status_code == 200
    assert client.session[RECENT_SESSION_KEY] == [tenant_b.pk, tenant_a.pk]
    body = client.get("/switch/").content.decode()
    assert body.index('data-client="globex"') < body.index('data-client="acme"')  # not by name
    assert 'Globex</a> <span class="muted">· recent</span>' in body
    # Only five are kept, most recent first.
    membership = tech_ab.provider_membership
    extra = []
    for n in range(5):
        tenant = bare_tenant(provider, n)
        tenant_grant(membership=membership, tenant=tenant)
        extra.append(tenant)
    session = client.session
    session[RECENT_SESSION_KEY] = [t.pk for t in extra]
    session.save()
    client.get("/t/acme/incidents/")
    assert client.session[RECENT_SESSION_KEY] == [tenant_a.pk, *[t.pk for t in extra[:4]]]


def test_api_token_requests_and_portal_do_not_touch_recent(
    api_for: Callable[[User], Client],
    client_for: Callable[..., Client],
    tenant_a: Tenant,
    tech_a: User,
    end_user_a: User,
) -> None:
    response = api_for(tech_a).get("/api/v1/t/acme/incidents/")
    assert response.status_code == 200
    assert "sessionid" not in response.cookies
    portal = client_for(end_user_a, host="acme.localhost")
    assert portal.get("/").status_code == 200
    assert RECENT_SESSION_KEY not in portal.session


def test_profile_sets_and_validates_the_time_zone(client_for: Callable[..., Client], tech_a: User) -> None:
    client = client_for(tech_a)
    assert client.get("/me/profile/").status_code == 200
    bad = client.post("/me/profile/", {"time_zone": "Mars/Olympus_Mons"})
    assert bad.status_code == 200 and 'class="error"' in bad.content.decode()
    tech_a.refresh_from_db()
    assert tech_a.time_zone == ""
    good = client.post("/me/profile/", {"time_zone": "Asia/Tokyo"})
    assert good.status_code == 302
    tech_a.refresh_from_db()
    assert tech_a.time_zone == "Asia/Tokyo"
    assert "<strong>Asia/Tokyo</strong>" in client.get("/me/profile/").content.decode()
    client.post("/me/profile/", {"time_zone": ""})
    tech_a.refresh_from_db()
    assert tech_a.time_zone == ""


@pytest.mark.parametrize("path", ["/", "/switch/", "/me/profile/", "/me/tokens/"])
def test_console_pages_need_sign_in(client_for: Callable[..., Client], path: str, db: Any) -> None:
    response = client_for(None).get(path)
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]
