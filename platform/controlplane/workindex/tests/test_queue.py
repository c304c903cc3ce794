"""The technician's queue across clients (selector, API, console page): only tenants the user may enter,
ordered by the next SLA deadline (none last), then opened time and id; filters; keyset pages; a fixed
number of queries whatever the number of rows; rows open the record in its tenant behind the usual
membership check."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django_tenants.utils import tenant_context

from conftest import actor_in, make_user
from controlplane.accounts.models import TenantGrant, User
from controlplane.accounts.services import provider_membership_set
from controlplane.problems import InvalidInput, PermissionDenied
from controlplane.providers.models import Provider
from controlplane.workindex.models import WorkGroupMember, WorkItem
from controlplane.workindex.selectors import workindex_queue
from controlplane.workindex.services import workindex_sla_set
from modules.incidents.services import incident_create
from modules.requests.models import FulfilmentTask
from modules.requests.services import request_submit
from modules.requests.tests.factories import item as catalog_item
from tenants.models import Tenant
from tenants.services import tenant_provision

NOW = dt.datetime(2026, 3, 2, 12, 0, tzinfo=dt.UTC)
PROBLEM = "application/problem+json"


def work(tenant: Tenant, number: str, **fields: Any) -> WorkItem:
    """An index row of ``tenant`` (the queue reads only the index)."""
    values: dict[str, Any] = {
        "record_type": "incident",
        "record_id": uuid.uuid4(),
        "title": f"title of {number}",
        "state": "new",
        "priority": 3,
        "opened_at": NOW - dt.timedelta(days=1),
        "updated_at": NOW,
    }
    values.update(fields)
    return WorkItem.objects.create(tenant=tenant, provider_id=tenant.provider_id, number=number, **values)


def numbers(user: User, **filters: Any) -> list[str]:
    page = workindex_queue(user=user, now=NOW, **filters)
    return [row.item.number for row in page.rows]


@pytest.fixture
def all_clients(provider: Provider) -> User:
    user = make_user("lead@northwind.example")
    provider_membership_set(user=user, provider=provider, role="technician", all_clients=True)
    return user


def test_a_technician_sees_only_the_tenants_they_were_granted(
    tenant_a: Tenant,
    tenant_b: Tenant,
    tech_a: User,
    tech_ab: User,
    all_clients: User,
    other_provider: Provider,
) -> None:
    work(tenant_a, "INC0000001")
    work(tenant_b, "INC0000002")
    elsewhere = tenant_provision(provider=other_provider, name="Initech", slug="initech")
    work(elsewhere, "INC0000003")
    # A grant row to another provider's tenant (refused by tenant_grant, written here by hand) gives
    # nothing either: as in routing, the provider must own the tenant.
    TenantGrant.objects.create(membership=tech_a.provider_membership, tenant=elsewhere)

    assert numbers(tech_a) == ["INC0000001"]
    assert numbers(tech_a, tenant="globex") == []  # a tenant filter cannot widen the scope
    assert numbers(tech_ab) == ["INC0000001", "INC0000002"]
    assert numbers(all_clients) == ["INC0000001", "INC0000002"]


def test_suspended_tenants_are_left_out(tenant_a: Tenant, tenant_b: Tenant, tech_ab: User) -> None:
    work(tenant_a, "INC0000001")
    work(tenant_b, "INC0000002")
    Tenant.objects.filter(pk=tenant_b.pk).update(status=Tenant.Status.SUSPENDED)
    assert numbers(tech_ab) == ["INC0000001"]


def test_client_staff_have_no_queue(tenant_a: Tenant, end_user_a: User) -> None:
    work(tenant_a, "INC0000001")
    with pytest.raises(PermissionDenied):
        workindex_queue(user=end_user_a)


def test_order_is_next_deadline_first_none_last_then_opened_then_id(tenant_a: Tenant, tech_a: User) -> None:
    early, late = NOW - dt.timedelta(hours=2), NOW + dt.timedelta(hours=5)
    work(tenant_a, "INC0000001", opened_at=NOW - dt.timedelta(days=3))  # no deadline, oldest
    work(tenant_a, "INC0000002", sla_due_at=late, opened_at=NOW - dt.timedelta(days=1))
    work(tenant_a, "INC0000003", sla_due_at=late, opened_at=NOW - dt.timedelta(days=2))
    work(tenant_a, "INC0000004", sla_due_at=early, breached=True)
    same = NOW - dt.timedelta(days=4)
    first, second = (work(tenant_a, f"INC000001{n}", opened_at=same) for n in (1, 2))
    assert first.pk < second.pk

    expected = ["INC0000004", "INC0000003", "INC0000002", "INC0000011", "INC0000012", "INC0000001"]
    assert numbers(tech_a) == expected
    pages, cursor = [], None
    while True:
        page = workindex_queue(user=tech_a, limit=2, cursor=cursor)
        pages.append([row.item.number for row in page.rows])
        cursor = page.next_cursor
        if cursor is None:
            break
    assert pages == [expected[0:2], expected[2:4], expected[4:6]]


def test_filters(tenant_a: Tenant, tenant_b: Tenant, tech_ab: User) -> None:
    group = uuid.uuid4()
    WorkGroupMember.objects.create(tenant=tenant_a, group_id=group, user_id=tech_ab.pk)
    # The same group id in another tenant is not "my group" there.
    work(tenant_a, "INC0000001", assigned_user_id=tech_ab.pk, assigned_person_id=uuid.uuid4())
    work(tenant_a, "INC0000002", assignment_group_id=group, sla_due_at=NOW + dt.timedelta(hours=3))
    work(tenant_b, "INC0000003", assignment_group_id=group, sla_due_at=NOW + dt.timedelta(hours=30))
    work(tenant_b, "PRB0000001", record_type="problem", assigned_person_id=uuid.uuid4())
    work(tenant_b, "INC0000004", breached=True, sla_due_at=NOW - dt.timedelta(minutes=5))

    assert numbers(tech_ab, assigned_to_me=True) == ["INC0000001"]
    assert numbers(tech_ab, my_groups=True) == ["INC0000002"]
    assert numbers(tech_ab, unassigned=True) == ["INC0000004", "INC0000002", "INC0000003"]
    assert numbers(tech_ab, breached=True) == ["INC0000004"]
    assert numbers(tech_ab, due_within_hours=4) == ["INC0000004", "INC0000002"]
    assert numbers(tech_ab, tenant="globex") == ["INC0000004", "INC0000003", "PRB0000001"]
    assert numbers(tech_ab, record_type="problem") == ["PRB0000001"]
    assert numbers(tech_ab, unassigned=True, tenant="globex", due_within_hours=48) == [
        "INC0000004",
        "INC0000003",
    ]


@pytest.mark.parametrize(
    ("filters", "field"),
    [
        ({"record_type": "article"}, "record_type"),
        ({"limit": 0}, "limit"),
        ({"limit": 201}, "limit"),
        ({"due_within_hours": 0}, "due_within_hours"),
        ({"cursor": "not-a-cursor"}, "cursor"),
        ({"assigned_to_me": True, "unassigned": True}, "unassigned"),
    ],
)
def test_bad_filters_are_refused_naming_the_field(tech_a: User, filters: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        workindex_queue(user=tech_a, **filters)
    assert [e["field"] for e in caught.value.extra["errors"]] == [field]


def test_the_queue_runs_two_queries_whatever_the_number_of_rows(
    tenant_a: Tenant, tenant_b: Tenant, tech_ab: User
) -> None:
    def count_queries(**filters: Any) -> int:
        with CaptureQueriesContext(connection) as queries:
            workindex_queue(user=tech_ab, **filters)
        return len(queries)

    work(tenant_a, "INC0000001")
    few = [count_queries(), count_queries(my_groups=True, due_within_hours=5, tenant="acme")]
    for n in range(2, 60):
        work(tenant_a if n % 2 else tenant_b, f"INC{n:07d}", sla_due_at=NOW + dt.timedelta(minutes=n))
    many = [count_queries(), count_queries(my_groups=True, due_within_hours=5, tenant="acme")]
    assert len(workindex_queue(user=tech_ab).rows) == 50
    assert few == many == [2, 2]


def test_api_returns_rows_with_tenant_and_console_url(
    tenant_a: Tenant, tech_a: User, api_for: Callable[[User], Client]
) -> None:
    with tenant_context(tenant_a):
        incident = incident_create(actor=actor_in(tenant_a, tech_a), short_description="Mail is down")
        workindex_sla_set(
            record_id=incident.pk,
            response_due_at=NOW + dt.timedelta(hours=1),
            resolution_due_at=NOW + dt.timedelta(hours=8),
            sla_paused=False,
            breached=False,
            next_escalation_at=None,
        )

    response = api_for(tech_a).get("/api/v1/queue?limit=10")

    assert response.status_code == 200
    body = response.json()
    opened_at = dt.datetime.fromisoformat(body["items"][0].pop("opened_at"))
    assert abs(opened_at - incident.opened_at) < dt.timedelta(milliseconds=1)  # JSON keeps milliseconds
    assert body["next_cursor"] is None
    assert body["items"] == [
        {
            "record_type": "incident",
            "record_id": str(incident.pk),
            "tenant": {"slug": "acme", "name": "Acme Corp"},
            "number": "INC0000001",
            "title": "Mail is down",
            "state": "new",
            "priority": 3,
            "due_at": "2026-03-02T13:00:00Z",
            "breached": False,
            "sla_paused": False,
            "assigned_to_me": False,
            "url": "/t/acme/incidents/INC0000001/",
        }
    ]


@pytest.mark.parametrize(
    "query",
    ["record_type=article", "limit=0", "due_within_hours=0", "cursor=%25%25", "tenant=Not%20A%20Slug",
     "assigned_to_me=true&unassigned=true"],
)  # fmt: skip
def test_api_refuses_bad_filters_with_problem_json(
    tech_a: User, api_for: Callable[[User], Client], query: str
) -> None:
    response = api_for(tech_a).get(f"/api/v1/queue?{query}")
    assert response.status_code == 422
    assert response["Content-Type"] == PROBLEM
    assert response.json()["type"] == "/problems/invalid-input"


def test_api_needs_a_provider_member(
    end_user_a: User, api_for: Callable[[User], Client], client_for: Callable[..., Client]
) -> None:
    denied = api_for(end_user_a).get("/api/v1/queue")
    anonymous = client_for(None).get("/api/v1/queue")
    bad_token = Client(HTTP_AUTHORIZATION="Bearer nope").get("/api/v1/queue")
    assert (denied.status_code, denied["Content-Type"]) == (403, PROBLEM)
    assert (anonymous.status_code, anonymous["Content-Type"]) == (401, PROBLEM)
    assert bad_token.status_code == 401


def test_console_page_lists_rows_that_open_in_their_tenant_behind_the_membership_check(
    tenant_a: Tenant, tenant_b: Tenant, tech_a: User, tech_ab: User, client_for: Callable[..., Client]
) -> None:
    with tenant_context(tenant_b):
        incident_b = incident_create(actor=actor_in(tenant_b, tech_ab), short_description="Globex printer")
    with tenant_context(tenant_a):
        incident_create(actor=actor_in(tenant_a, tech_a), short_description="Acme mail")
    browser_a, browser_ab = client_for(tech_a), client_for(tech_ab)

    home = browser_a.get("/")
    page = browser_a.get("/queue/")
    partial = browser_ab.get("/queue/?tenant=globex", HTTP_HX_REQUEST="true")
    opened = browser_a.get("/t/acme/incidents/INC0000001/")
    # tech A holds a URL of B's record (from tech AB's queue): the tenant's membership check answers 404.
    foreign = browser_a.get(f"/t/globex/incidents/{incident_b.number}/")

    assert 'href="/queue/"' in home.content.decode()
    assert page.status_code == 200
    assert 'href="/t/acme/incidents/INC0000001/"' in page.content.decode()
    assert "Globex printer" not in page.content.decode()
    assert partial.status_code == 200
    assert "<html" not in partial.content.decode()
    assert 'href="/t/globex/incidents/INC0000001/"' in partial.content.decode()
    assert "Acme mail" not in partial.content.decode()
    assert opened.status_code == 200
    assert foreign.status_code == 404


def test_console_page_shows_bad_filters(tech_a: User, client_for: Callable[..., Client]) -> None:
    response = client_for(tech_a).get("/queue/?due_within_hours=0")
    assert response.status_code == 422
    assert "Due within (hours)" in response.content.decode()


def test_a_fulfilment_task_row_opens_its_request(
    tenant_a: Tenant, tech_a: User, client_for: Callable[..., Client]
) -> None:
    with tenant_context(tenant_a):
        actor = actor_in(tenant_a, tech_a)
        request = request_submit(actor=actor, items=[{"catalog_item": catalog_item(actor)}])
        task = FulfilmentTask.objects.get(requested_item__request=request)
    rows = {row.item.number: row.url for row in workindex_queue(user=tech_a).rows}

    assert rows == {
        "REQ0000001": "/t/acme/requests/REQ0000001/",
        "SCTASK0000001": f"/t/acme/requests/tasks/{task.pk}/",
    }
    response = client_for(tech_a).get(rows["SCTASK0000001"])
    assert (response.status_code, response["Location"]) == (302, "/t/acme/requests/REQ0000001/")
