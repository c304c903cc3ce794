"""The console lists (modules/records/listing.py) through the test client: fixed query counts, sorting,
pagination, filters and saved views, for incidents, requests, problems, changes, CIs and articles."""

from __future__ import annotations

import datetime as dt
import re
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
from controlplane.accounts.services import provider_membership_set, tenant_grant
from controlplane.problems import PermissionDenied
from controlplane.providers.models import Provider
from modules.changes.models import Change
from modules.cmdb.models import ConfigurationItem
from modules.incidents.models import Incident
from modules.knowledge.services import article_create
from modules.people.models import Group, GroupMembership, Person
from modules.problems.models import Problem
from modules.records.actor import Actor
from modules.records.listing import MAX_ROWS, due_label, page_get, page_number
from modules.records.models import ActivityEntry, SavedView
from modules.records.services import saved_view_create, saved_view_delete
from modules.requests.models import ServiceRequest
from modules.sla.models import SLAPolicy, SLATimer
from modules.sla.tests.factories import contract, london_calendar, policy
from tenants.models import Tenant

NOW = dt.datetime(2026, 3, 2, 10, 0, tzinfo=dt.UTC)


@pytest.fixture
def tech_a2(provider: Provider, tenant_a: Tenant) -> User:
    """A second technician of tenant A."""
    user = make_user("tech.a2@northwind.example")
    tenant_grant(
        membership=provider_membership_set(user=user, provider=provider, role="technician"), tenant=tenant_a
    )
    return user


def _people() -> tuple[Person, Group]:
    person, _ = Person.objects.get_or_create(display_name="Pat Caller", email="pat@acme.example")
    group, _ = Group.objects.get_or_create(name="Service desk")
    return person, group


def seed(kind: str, start: int, count: int, **fields: Any) -> None:
    """``count`` rows of ``kind`` numbered from ``start``, each with every related row a list shows (caller,
    assignee, group, owner; SLA timers for incidents and requests). Inside a tenant's context."""
    person, group = _people()
    numbers = range(start, start + count)
    if kind == "incidents":
        rows: list[Any] = Incident.objects.bulk_create(
            Incident(
                number=f"INC{n:07d}",
                short_description=f"incident {n}",
                opened_at=fields.get("opened_at", NOW - dt.timedelta(minutes=n)),
                priority=fields.get("priority", 1 + n % 5),
                caller=person,
                assigned_to=fields.get("assigned_to", person),
                assignment_group=fields.get("assignment_group", group),
                category=fields.get("category", ""),
                state=fields.get("state", "new"),
            )
            for n in numbers
        )
        _timers("incident", rows)
    elif kind == "requests":
        rows = ServiceRequest.objects.bulk_create(
            ServiceRequest(
                number=f"REQ{n:07d}", short_description=f"request {n}", requested_for=person, opened_at=NOW
            )
            for n in numbers
        )
        _timers("service_request", rows)
    elif kind == "problems":
        Problem.objects.bulk_create(
            Problem(
                number=f"PRB{n:07d}",
                short_description=f"problem {n}",
                priority=3,
                opened_at=NOW,
                assigned_to=person,
                assignment_group=group,
            )
            for n in numbers
        )
    elif kind == "changes":
        Change.objects.bulk_create(
            Change(
                number=f"CHG{n:07d}",
                short_description=f"change {n}",
                change_type=fields.get("change_type", "normal"),
                risk=fields.get("risk", "low"),
                requested_by=person,
                assigned_to=person,
                assignment_group=group,
            )
            for n in numbers
        )
    elif kind == "cis":
        ConfigurationItem.objects.bulk_create(
            ConfigurationItem(
                number=f"CI{n:07d}",
                name=f"server {n:04d}",
                ci_class=fields.get("ci_class", "server"),
                lifecycle=fields.get("lifecycle", "operational"),
                owner=person,
                support_group=group,
            )
            for n in numbers
        )
    elif kind == "articles":
        actor = Actor.system()
        for n in numbers:
            article_create(actor=actor, title=f"article {n}", body="text", category="how-to")


def _timers(record_type: str, rows: list[Any]) -> None:
    """A running resolution timer due in 2 h 5 min for each row (one policy per record type)."""
    found_policy = SLAPolicy.objects.filter(record_type=record_type).first() or policy(
        contract(london_calendar(name=f"Calendar {record_type}")),
        name=f"Policy {record_type}",
        record_type=record_type,
        priorities=[] if record_type == "service_request" else [3],
        resolution_target_minutes=480,
    )
    now = timezone.now()
    SLATimer.objects.bulk_create(
        SLATimer(
            record_type=record_type,
            record_id=row.pk,
            policy=found_policy,
            kind="resolution",
            stage="running",
            started_at=now,
            target_seconds=3600,
            due_at=now + dt.timedelta(hours=2, minutes=5),
            computed_at=now,
        )
        for row in rows
    )


LISTS = {
    "incidents": "/t/acme/incidents/",
    "requests": "/t/acme/requests/",
    "problems": "/t/acme/problems/",
    "changes": "/t/acme/changes/",
    "cis": "/t/acme/cmdb/",
    "articles": "/t/acme/knowledge/",
}
ROW = re.compile(r'<td><a href="/t/acme/[a-z]+/([A-Z]+\d+)/">')


def numbers(response: Any) -> list[str]:
    """The record numbers of a list page's rows, in order."""
    assert response.status_code == 200, response.status_code
    return ROW.findall(response.content.decode())


def queries(client: Client, url: str) -> int:
    """The queries of one GET of ``url``, after a first GET (which may reset the connection's schema
    after the test's own ``tenant_context``, one ``SET search_path`` more)."""
    client.get(url)
    with CaptureQueriesContext(connection) as captured:
        response = client.get(url)
    assert response.status_code == 200
    return len(captured.captured_queries)


@pytest.mark.parametrize("kind", list(LISTS))
def test_a_list_page_issues_the_same_queries_for_1_and_30_rows(
    kind: str, client_for: Callable[..., Client], tech_a: User, tenant_a: Tenant
) -> None:
    console = client_for(tech_a)
    with tenant_context(tenant_a):
        seed(kind, 1, 1)
    console.get(LISTS[kind])  # warm the per-process caches (content types, URL resolvers)
    one = queries(console, LISTS[kind])
    with tenant_context(tenant_a):
        seed(kind, 2, 29)
        saved_view_create(actor=actor_in(tenant_a, tech_a), list_name=kind, name="mine", query="q=x")
    thirty = queries(console, LISTS[kind])
    page = console.get(LISTS[kind])
    assert len(numbers(page)) == 30
    assert one == thirty
    if kind in ("incidents", "requests"):
        assert "in 2 h" in page.content.decode()  # the SLA column, read for the whole page at once


def test_sorting_by_a_whitelisted_column_with_aria_sort_and_ignoring_an_unknown_one(
    client_for: Callable[..., Client], tech_a: User, tenant_a: Tenant
) -> None:
    with tenant_context(tenant_a):
        seed("incidents", 1, 10)
    console = client_for(tech_a)
    by_priority = console.get("/t/acme/incidents/?sort=priority")
    rows = numbers(by_priority)
    with tenant_context(tenant_a):
        expected = list(Incident.objects.order_by("priority", "id").values_list("number", flat=True))
    assert rows == expected
    page = by_priority.content.decode()
    assert re.search(r'<th scope="col" aria-sort="ascending">\s*<a href="\?sort=-priority"', page)
    assert page.count("aria-sort=") == 1
    newest_first = numbers(console.get("/t/acme/incidents/?sort=-opened"))
    assert newest_first == [f"INC{n:07d}" for n in range(1, 11)]
    assert numbers(console.get("/t/acme/incidents/?sort=opened")) == newest_first[::-1]
    # An unknown sort key (or an injection attempt) is ignored: the default order, and a note says so.
    refused = console.get("/t/acme/incidents/?sort=-description;drop")
    assert numbers(refused) == newest_first
    assert "is not offered here" in refused.content.decode()


def test_pages_cover_every_row_once_even_when_the_sort_key_ties(
    client_for: Callable[..., Client], tech_a: User, tenant_a: Tenant
) -> None:
    with tenant_context(tenant_a):
        seed("incidents", 1, 60, opened_at=NOW, priority=3)  # one opened_at for all: the id decides
        everyone = set(Incident.objects.values_list("number", flat=True))
    console = client_for(tech_a)
    seen: list[str] = []
    for sort in ("-opened", "priority"):
        seen = []
        for number in (1, 2, 3):
            response = console.get(f"/t/acme/incidents/?sort={sort}&size=25&page={number}")
            seen += numbers(response)
            page = response.content.decode()
            assert ('rel="prev"' in page) == (number > 1)
            assert ('rel="next"' in page) == (number < 3)
        assert len(seen) == 60 and set(seen) == everyone
    # Ties on the sort key break on the id, in the sort's direction (UUIDv7: creation order).
    assert numbers(console.get("/t/acme/incidents/?size=100")) == sorted(everyone, reverse=True)
    assert len(numbers(console.get("/t/acme/incidents/?size=7"))) == 50  # not offered: the default


def test_offsets_stop_at_the_cap(tenant_a: Tenant) -> None:
    """Past MAX_ROWS no next page is offered (the page says to narrow the filters); a page is an ids
    query (LIMIT/OFFSET) and a rows query, with no COUNT."""
    with tenant_context(tenant_a):
        Incident.objects.bulk_create(
            Incident(number=f"INC{n:07d}", short_description="x", opened_at=NOW, priority=3)
            for n in range(MAX_ROWS + 1)
        )
        qs = Incident.objects.order_by("id")
        with CaptureQueriesContext(connection) as captured:
            last = page_get(qs, number=MAX_ROWS // 100, size=100)
        sqls = [q["sql"] for q in captured.captured_queries]
        assert len(sqls) == 2 and not any("COUNT" in sql for sql in sqls)
        assert "OFFSET 9900" in sqls[0] and "LIMIT 101" in sqls[0]
        assert len(last.rows) == 100 and last.capped and not last.has_next
        before = page_get(qs, number=MAX_ROWS // 100 - 1, size=100)
        assert before.has_next and not before.capped
    assert page_number("100000", 100) == MAX_ROWS // 100
    assert page_number("-3", 25) == 1 and page_number("x", 25) == 1


def test_incident_filters(client_for: Callable[..., Client], tech_a: User, tenant_a: Tenant) -> None:
    with tenant_context(tenant_a):
        me = actor_in(tenant_a, tech_a).person
        assert me is not None
        network = Group.objects.create(name="Network")
        GroupMembership.objects.create(group=network, person=me)
        seed("incidents", 1, 2, priority=1, category="Email")  # caller's, service desk
        seed("incidents", 3, 1, assigned_to=me, assignment_group=None, state="in_progress")
        seed(
            "incidents",
            4,
            1,
            assigned_to=None,
            assignment_group=network,
            opened_at=NOW - dt.timedelta(days=40),
        )
        Incident.objects.filter(number="INC0000004").update(opened_at=timezone.now() - dt.timedelta(days=40))
        Incident.objects.exclude(number="INC0000004").update(opened_at=timezone.now())
    console = client_for(tech_a)

    def rows(query: str) -> list[str]:
        return sorted(numbers(console.get(f"/t/acme/incidents/?{query}")))

    assert rows("assignee=me") == ["INC0000003"]
    assert rows("mine=on") == ["INC0000003"]  # the old bookmark's spelling
    assert rows("assignee=my_groups") == ["INC0000004"]
    assert rows("assignee=unassigned") == ["INC0000004"]
    with tenant_context(tenant_a):
        desk = str(Group.objects.get(name="Service desk").pk)
    assert rows(f"assignment_group={desk}") == ["INC0000001", "INC0000002"]
    assert rows("category=email") == ["INC0000001", "INC0000002"]
    assert rows("state=in_progress") == ["INC0000003"]
    assert rows("priority=1") == ["INC0000001", "INC0000002"]
    assert rows("opened=30") == ["INC0000001", "INC0000002", "INC0000003"]
    assert rows("q=incident+4") == ["INC0000004"]
    # A bad value is reported next to its field; the other filters still apply.
    bad = console.get("/t/acme/incidents/?opened=9999&priority=1")
    assert sorted(numbers(bad)) == ["INC0000001", "INC0000002"]
    assert 'class="error" id="id_opened_error"' in bad.content.decode()
    assert 'aria-describedby="id_opened_error"' in bad.content.decode()
    assert 'aria-invalid="true"' in bad.content.decode()
    # htmx gets only the table, and the response varies on HX-Request.
    partial = console.get("/t/acme/incidents/?assignee=me", HTTP_HX_REQUEST="true")
    assert b"<html" not in partial.content and numbers(partial) == ["INC0000003"]
    assert "HX-Request" in partial["Vary"]


def test_list_specific_filters(client_for: Callable[..., Client], tech_a: User, tenant_a: Tenant) -> None:
    with tenant_context(tenant_a):
        seed("changes", 1, 1, change_type="emergency", risk="high")
        seed("changes", 2, 1)
        seed("cis", 1, 1, ci_class="database", lifecycle="retired")
        seed("cis", 2, 1)
        actor = Actor.system()
        article_create(actor=actor, title="VPN guide", body="x", audience="portal")
        article_create(actor=actor, title="Runbook", body="x")
    console = client_for(tech_a)
    assert numbers(console.get("/t/acme/changes/?change_type=emergency&risk=high")) == ["CHG0000001"]
    assert numbers(console.get("/t/acme/changes/?risk=low")) == ["CHG0000002"]
    assert numbers(console.get("/t/acme/cmdb/?ci_class=database&lifecycle=retired")) == ["CI0000001"]
    assert numbers(console.get("/t/acme/cmdb/?lifecycle=operational")) == ["CI0000002"]
    portal = console.get("/t/acme/knowledge/?audience=portal&state=draft")
    assert "VPN guide" in portal.content.decode() and "Runbook" not in portal.content.decode()
    by_title = console.get("/t/acme/knowledge/?sort=title").content.decode()
    assert by_title.index("Runbook") < by_title.index("VPN guide")


def test_saving_applying_and_deleting_a_view(
    client_for: Callable[..., Client], tech_a: User, tech_a2: User, tenant_a: Tenant
) -> None:
    with tenant_context(tenant_a):
        seed("incidents", 1, 3)
    console = client_for(tech_a)
    saved = console.post(
        "/t/acme/views/save/",
        {
            "list_name": "incidents",
            "name": "P1 first",
            "query": "priority=2&sort=number&page=3",
            "shared": "on",
            "next": "/t/acme/incidents/",
        },
    )
    assert saved.status_code == 302 and saved["Location"] == "/t/acme/incidents/?priority=2&sort=number"
    with tenant_context(tenant_a):
        view = SavedView.objects.get()
        assert (view.owner_user_id, view.query, view.shared) == (tech_a.pk, "priority=2&sort=number", True)
        assert ActivityEntry.objects.filter(record_id=view.pk, verb="saved_view.created").count() == 1
    page = console.get("/t/acme/incidents/").content.decode()
    assert "P1 first" in page and f"/t/acme/views/{view.pk}/delete/" in page
    applied = console.get(f"/t/acme/incidents/?view={view.pk}")
    assert applied.status_code == 302 and applied["Location"] == "/t/acme/incidents/?priority=2&sort=number"
    assert numbers(console.get(applied["Location"])) == ["INC0000001"]
    # The same name twice on the same list is refused next to the name.
    again = console.post(
        "/t/acme/views/save/", {"list_name": "incidents", "name": "P1 first", "next": "/t/acme/incidents/"}
    )
    assert again.status_code == 409

    # Another technician sees the shared view and may apply it, but not delete it.
    other = client_for(tech_a2)
    other_page = other.get("/t/acme/incidents/").content.decode()
    assert "P1 first" in other_page and f"/t/acme/views/{view.pk}/delete/" not in other_page
    assert other.get(f"/t/acme/incidents/?view={view.pk}").status_code == 302
    refused = other.post(f"/t/acme/views/{view.pk}/delete/", {"next": "/t/acme/incidents/"})
    assert refused.status_code == 403
    with tenant_context(tenant_a):
        assert SavedView.objects.filter(pk=view.pk).exists()
        assert not ActivityEntry.objects.filter(verb="saved_view.deleted").exists()
    # A private view of the other technician is not even visible: 404, as for a missing id.
    with tenant_context(tenant_a):
        private = saved_view_create(
            actor=actor_in(tenant_a, tech_a2), list_name="incidents", name="mine", query=""
        )
    assert console.get(f"/t/acme/incidents/?view={private.pk}").status_code == 404
    assert console.post(f"/t/acme/views/{private.pk}/delete/").status_code == 404
    # A view of another list is not applied here.
    assert console.get(f"/t/acme/problems/?view={view.pk}").status_code == 404

    deleted = console.post(f"/t/acme/views/{view.pk}/delete/", {"next": "/t/acme/incidents/"})
    assert deleted.status_code == 302 and deleted["Location"] == "/t/acme/incidents/"
    with tenant_context(tenant_a):
        assert not SavedView.objects.filter(pk=view.pk).exists()
        assert ActivityEntry.objects.filter(record_id=view.pk, verb="saved_view.deleted").count() == 1


def test_another_tenants_view_id_is_not_found(
    client_for: Callable[..., Client], tech_ab: User, tenant_a: Tenant, tenant_b: Tenant
) -> None:
    with tenant_context(tenant_b):
        theirs = saved_view_create(
            actor=actor_in(tenant_b, tech_ab), list_name="incidents", name="B view", query="", shared=True
        )
    console = client_for(tech_ab)
    assert console.get(f"/t/acme/incidents/?view={theirs.pk}").status_code == 404
    assert console.get("/t/acme/incidents/?view=not-a-uuid").status_code == 404
    assert console.post(f"/t/acme/views/{theirs.pk}/delete/").status_code == 404
    assert "B view" not in console.get("/t/acme/incidents/").content.decode()
    with tenant_context(tenant_b):
        assert SavedView.objects.filter(pk=theirs.pk).exists()
    assert console.get(f"/t/globex/incidents/?view={theirs.pk}").status_code == 302


def test_end_users_cannot_save_views(
    client_for: Callable[..., Client], end_user_a: User, tech_a: User, tenant_a: Tenant
) -> None:
    with tenant_context(tenant_a):
        end_user = actor_in(tenant_a, end_user_a, role="end_user")
        with pytest.raises(PermissionDenied):
            saved_view_create(actor=end_user, list_name="incidents", name="x", query="")
        view = saved_view_create(actor=actor_in(tenant_a, tech_a), list_name="incidents", name="t", query="")
        with pytest.raises(PermissionDenied):
            saved_view_delete(actor=end_user, view=view)
    response = client_for(end_user_a).post(
        "/t/acme/views/save/", {"list_name": "incidents", "name": "x", "next": "/t/acme/incidents/"}
    )
    assert response.status_code in (403, 404)
    with tenant_context(tenant_a):
        assert list(SavedView.objects.values_list("name", flat=True)) == ["t"]


def test_due_labels() -> None:
    assert [due_label(s) for s in (30, 45 * 60, 2 * 3600 + 300, 3 * 86400, -3 * 3600)] == [
        "in 1 min",
        "in 45 min",
        "in 2 h",
        "in 3 d",
        "overdue 3 h",
    ]
