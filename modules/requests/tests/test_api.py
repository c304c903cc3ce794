"""The catalog and service request API through the test client: /api/v1/t/<tenant>/catalog/... and
/api/v1/t/<tenant>/requests/..., shapes, problem+json errors, roles, and tenant isolation. Every refused
request also checks that nothing was written."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import pytest
from django.test import Client
from django_tenants.utils import tenant_context

from conftest import actor_in, make_user
from controlplane.accounts.models import User
from controlplane.accounts.services import tenant_membership_set
from modules.people.models import Person
from modules.records.models import ActivityEntry
from modules.requests.models import Approval, CatalogItem, ServiceRequest
from tenants.models import Tenant

from .factories import LAPTOP_SCHEMA, group

CATALOG = "/api/v1/t/acme/catalog"
REQUESTS = "/api/v1/t/acme/requests"
PROBLEM = "application/problem+json"
ApiFor = Callable[[User], Client]


def post(api: Client, url: str, body: Any) -> Any:
    return api.post(url, body, content_type="application/json")


def assert_problem(response: Any, status: int, slug: str) -> dict[str, Any]:
    assert response.status_code == status, response.content
    assert response["Content-Type"] == PROBLEM
    body: dict[str, Any] = response.json()
    assert (body["type"], body["status"]) == (f"/problems/{slug}", status)
    return body


def writes(tenant: Tenant) -> tuple[int, ...]:
    with tenant_context(tenant):
        return (
            CatalogItem.objects.count(),
            ServiceRequest.objects.count(),
            Approval.objects.filter(state__in=["approved", "rejected"]).count(),
            ActivityEntry.objects.count(),
        )


@pytest.fixture
def approver_a(tenant_a: Tenant) -> User:
    """Morgan: a client approver, manager of alice (end_user_a)."""
    user = make_user("morgan@acme.example")
    tenant_membership_set(user=user, tenant=tenant_a, role="approver")
    return user


@pytest.fixture
def catalog(
    tenant_a: Tenant, tech_a: User, end_user_a: User, approver_a: User, api_for: ApiFor
) -> dict[str, Any]:
    """A category, a laptop (manager approval, desk fulfils) and a mouse (no approval), via the API."""
    with tenant_context(tenant_a):
        alice = actor_in(tenant_a, end_user_a, "end_user").person
        morgan = actor_in(tenant_a, approver_a, "approver").person
        assert alice is not None and morgan is not None
        Person.objects.filter(pk=alice.pk).update(manager=morgan)
        desk = group("Desk")
    tech = api_for(tech_a)
    category = post(tech, f"{CATALOG}/categories", {"name": "Hardware", "order": 10})
    assert category.status_code == 201, category.content
    category_id = category.json()["id"]
    laptop = post(
        tech,
        f"{CATALOG}/items",
        {
            "name": "Laptop",
            "category_id": category_id,
            "form_schema": LAPTOP_SCHEMA,
            "fulfilment_group_id": str(desk.pk),
            "expected_delivery_hours": 48,
            "approval_required": True,
            "approval_steps": [{"order": 1, "mode": "one", "approver_role": "requester_manager"}],
        },
    )
    assert laptop.status_code == 201, laptop.content
    mouse = post(tech, f"{CATALOG}/items", {"name": "Mouse", "category_id": category_id})
    assert mouse.status_code == 201, mouse.content
    return {
        "category": category_id,
        "laptop": laptop.json(),
        "mouse": mouse.json()["id"],
        "desk": str(desk.pk),
        "alice": str(alice.pk),
        "morgan": str(morgan.pk),
    }


def test_catalog_item_shape(catalog: dict[str, Any]) -> None:
    laptop = catalog["laptop"]
    assert set(laptop) == {
        "id",
        "name",
        "short_description",
        "category",
        "form_schema",
        "fulfilment_group",
        "expected_delivery_hours",
        "approval_required",
        "active",
        "approval_steps",
    }
    assert laptop["form_schema"] == LAPTOP_SCHEMA
    assert laptop["category"] == {
        "id": catalog["category"],
        "name": "Hardware",
        "description": "",
        "order": 10,
    }
    assert laptop["fulfilment_group"] == {"id": catalog["desk"], "name": "Desk"}
    assert laptop["approval_steps"] == [
        {
            "order": 1,
            "mode": "one",
            "approver_person": None,
            "approver_role": "requester_manager",
            "approver_group": None,
        }
    ]


def test_end_users_see_active_items_and_cannot_change_the_catalog(
    catalog: dict[str, Any], tenant_a: Tenant, tech_a: User, end_user_a: User, api_for: ApiFor
) -> None:
    tech, alice = api_for(tech_a), api_for(end_user_a)
    patched = tech.patch(
        f"{CATALOG}/items/{catalog['mouse']}", {"active": False}, content_type="application/json"
    )
    assert patched.status_code == 200 and patched.json()["active"] is False
    assert [i["name"] for i in alice.get(f"{CATALOG}/items").json()] == ["Laptop"]
    assert [i["name"] for i in tech.get(f"{CATALOG}/items?include_inactive=true").json()] == [
        "Laptop",
        "Mouse",
    ]
    assert_problem(alice.get(f"{CATALOG}/items/{catalog['mouse']}"), 404, "not-found")
    before = writes(tenant_a)
    refused = post(alice, f"{CATALOG}/items", {"name": "Pony", "category_id": catalog["category"]})
    assert_problem(refused, 403, "forbidden")
    assert_problem(post(alice, f"{CATALOG}/categories", {"name": "Ponies"}), 403, "forbidden")
    assert writes(tenant_a) == before


def test_bad_schema_on_item_save_is_a_422_naming_form_schema(
    catalog: dict[str, Any], tenant_a: Tenant, tech_a: User, api_for: ApiFor
) -> None:
    tech = api_for(tech_a)
    before = writes(tenant_a)
    bad = {"type": "object", "properties": {"size": {"type": "strang"}}}
    body = assert_problem(
        post(
            tech, f"{CATALOG}/items", {"name": "Desk", "category_id": catalog["category"], "form_schema": bad}
        ),
        422,
        "invalid-input",
    )
    assert [e["field"] for e in body["errors"]] == ["form_schema"]
    patched = tech.patch(
        f"{CATALOG}/items/{catalog['laptop']['id']}", {"form_schema": bad}, content_type="application/json"
    )
    assert [e["field"] for e in assert_problem(patched, 422, "invalid-input")["errors"]] == ["form_schema"]
    assert writes(tenant_a) == before


def test_submit_approve_fulfil_through_the_api(
    catalog: dict[str, Any],
    tenant_a: Tenant,
    tech_a: User,
    end_user_a: User,
    approver_a: User,
    api_for: ApiFor,
) -> None:
    tech, alice, morgan = api_for(tech_a), api_for(end_user_a), api_for(approver_a)
    answers = {"reason": "old one broke", "model": "standard"}
    created = post(
        alice, f"{REQUESTS}/", {"items": [{"catalog_item_id": catalog["laptop"]["id"], "variables": answers}]}
    )
    assert created.status_code == 201, created.content
    request = created.json()
    assert set(request) == {
        "id",
        "number",
        "short_description",
        "requested_for",
        "opened_by",
        "state",
        "opened_at",
        "due_at",
        "approved_at",
        "closed_at",
        "updated_at",
    }
    assert (request["number"], request["state"], request["requested_for"]["id"]) == (
        "REQ0000001",
        "pending_approval",
        catalog["alice"],
    )
    base = f"{REQUESTS}/{request['id']}"
    items = alice.get(f"{base}/items").json()
    assert [(i["number"], i["catalog_item"]["name"], i["variables"], i["state"]) for i in items] == [
        ("RITM0000001", "Laptop", answers, "pending_approval")
    ]
    waiting = morgan.get(f"{REQUESTS}/approvals").json()
    assert [(a["request_id"], a["approver"]["id"], a["state"]) for a in waiting] == [
        (request["id"], catalog["morgan"], "pending")
    ]
    assert alice.get(f"{REQUESTS}/approvals").json() == []
    approval_id = waiting[0]["id"]

    before = writes(tenant_a)
    assert_problem(
        post(alice, f"{REQUESTS}/approvals/{approval_id}/decision", {"decision": "approve"}), 403, "forbidden"
    )
    assert_problem(
        post(tech, f"{REQUESTS}/approvals/{approval_id}/decision", {"decision": "approve"}), 403, "forbidden"
    )
    assert_problem(post(alice, f"{REQUESTS}/approvals/{approval_id}/resend", {}), 403, "forbidden")
    assert writes(tenant_a) == before

    resent = post(tech, f"{REQUESTS}/approvals/{approval_id}/resend", {})
    assert resent.status_code == 200 and resent.json()["reminder_count"] == 1
    decided = post(
        morgan, f"{REQUESTS}/approvals/{approval_id}/decision", {"decision": "approve", "comment": "fine"}
    )
    assert decided.status_code == 200, decided.content
    assert (decided.json()["state"], decided.json()["comment"]) == ("approved", "fine")
    again = post(morgan, f"{REQUESTS}/approvals/{approval_id}/decision", {"decision": "approve"})
    assert_problem(again, 409, "approval-not-pending")

    assert alice.get(base).json()["state"] == "in_progress"
    tasks = tech.get(f"{base}/tasks").json()
    assert [(t["number"], t["assignment_group"]["id"], t["state"], t["request_id"]) for t in tasks] == [
        ("SCTASK0000001", catalog["desk"], "open", request["id"])
    ]
    task_url = f"{REQUESTS}/tasks/{tasks[0]['id']}"
    assert_problem(post(alice, f"{task_url}/actions", {"action": "complete"}), 403, "forbidden")
    assert_problem(post(tech, f"{task_url}/actions", {"action": "fly"}), 422, "invalid-input")
    with tenant_context(tenant_a):
        tech_person = actor_in(tenant_a, tech_a).person
        assert tech_person is not None
        group_id = str(group("Field", tech_person).pk)
    assigned = tech.patch(
        task_url,
        {"assignment_group_id": group_id, "assigned_to_id": str(tech_person.pk)},
        content_type="application/json",
    )
    assert assigned.status_code == 200, assigned.content
    assert assigned.json()["assigned_to"]["id"] == str(tech_person.pk)
    assert [t["number"] for t in tech.get(f"{REQUESTS}/tasks?assignment_group={group_id}").json()] == [
        "SCTASK0000001"
    ]
    assert alice.get(f"{REQUESTS}/tasks").status_code == 403  # fulfilment tasks are the desk's work
    done = post(tech, f"{task_url}/actions", {"action": "complete"})
    assert done.status_code == 200 and done.json()["state"] == "closed_complete"
    assert_problem(post(tech, f"{task_url}/actions", {"action": "complete"}), 409, "invalid-transition")
    assert alice.get(base).json()["state"] == "fulfilled"
    assert_problem(post(alice, f"{base}/cancel", {}), 409, "invalid-transition")

    approvals = alice.get(f"{base}/approvals").json()
    assert [(a["step"], a["state"], a["reminder_count"], a["decided_by"]["id"]) for a in approvals] == [
        (1, "approved", 1, catalog["morgan"])
    ]
    history = [e["verb"] for e in alice.get(f"{base}/history").json()]
    assert history == [
        "service_request.submitted",
        "service_request.pending_approval",
        "approval.requested",
        "approval.resent",
        "approval.approved",
        "service_request.approved",
        "service_request.in_progress",
        "task.updated",
        "task.complete",
        "requested_item.fulfilled",
        "service_request.fulfilled",
    ]


def test_bad_submission_is_422_with_every_field_and_writes_nothing(
    catalog: dict[str, Any], tenant_a: Tenant, end_user_a: User, api_for: ApiFor
) -> None:
    alice = api_for(end_user_a)
    before = writes(tenant_a)
    bad = {"model": "developer", "needed_by": "tomorrow", "deliver_to": str(uuid.uuid4())}
    response = post(
        alice, f"{REQUESTS}/", {"items": [{"catalog_item_id": catalog["laptop"]["id"], "variables": bad}]}
    )
    body = assert_problem(response, 422, "invalid-input")
    assert body["errors"] == [
        {"field": "variables.reason", "message": "required", "item": 0},
        {"field": "variables.needed_by", "message": "not a valid date (YYYY-MM-DD)", "item": 0},
        {"field": "variables.deliver_to", "message": "no such person in this tenant", "item": 0},
        {"field": "variables.justification", "message": "required", "item": 0},
    ]
    missing_item = post(alice, f"{REQUESTS}/", {"items": [{"catalog_item_id": str(uuid.uuid4())}]})
    assert assert_problem(missing_item, 422, "invalid-input")["errors"] == [
        {"field": "items[0].catalog_item", "message": "no such active item"}
    ]
    assert_problem(post(alice, f"{REQUESTS}/", {"items": []}), 422, "invalid-input")
    assert writes(tenant_a) == before


def test_end_user_orders_for_self_only_and_technician_on_behalf(
    catalog: dict[str, Any], tenant_a: Tenant, tech_a: User, end_user_a: User, api_for: ApiFor
) -> None:
    alice, tech = api_for(end_user_a), api_for(tech_a)
    line = {"catalog_item_id": catalog["mouse"], "variables": {}}
    before = writes(tenant_a)
    refused = post(alice, f"{REQUESTS}/", {"requested_for_id": catalog["morgan"], "items": [line]})
    assert_problem(refused, 403, "forbidden")
    assert writes(tenant_a) == before
    made = post(tech, f"{REQUESTS}/", {"requested_for_id": catalog["alice"], "items": [line]})
    assert made.status_code == 201, made.content
    assert (made.json()["requested_for"]["id"], made.json()["state"]) == (catalog["alice"], "in_progress")
    assert [r["number"] for r in alice.get(f"{REQUESTS}/").json()["results"]] == ["REQ0000001"]


def test_delegate_and_reject_through_the_api(
    catalog: dict[str, Any],
    tenant_a: Tenant,
    tech_a: User,
    end_user_a: User,
    approver_a: User,
    api_for: ApiFor,
) -> None:
    alice, morgan, tech = api_for(end_user_a), api_for(approver_a), api_for(tech_a)
    answers = {"reason": "new starter", "model": "standard"}
    request = post(
        alice, f"{REQUESTS}/", {"items": [{"catalog_item_id": catalog["laptop"]["id"], "variables": answers}]}
    ).json()
    approval_id = morgan.get(f"{REQUESTS}/approvals").json()[0]["id"]
    with tenant_context(tenant_a):
        tech_person = actor_in(tenant_a, tech_a).person
        assert tech_person is not None
    delegated = post(
        morgan, f"{REQUESTS}/approvals/{approval_id}/delegate", {"delegate_to_id": str(tech_person.pk)}
    )
    assert delegated.status_code == 200, delegated.content
    assert (delegated.json()["approver"]["id"], delegated.json()["delegated_from"]["id"]) == (
        str(tech_person.pk),
        catalog["morgan"],
    )
    assert morgan.get(f"{REQUESTS}/approvals").json() == []
    rejected = post(
        tech, f"{REQUESTS}/approvals/{approval_id}/decision", {"decision": "reject", "comment": "use a spare"}
    )
    assert rejected.status_code == 200, rejected.content
    assert alice.get(f"{REQUESTS}/{request['id']}").json()["state"] == "rejected"


def test_comments_and_work_notes(
    catalog: dict[str, Any], tech_a: User, end_user_a: User, api_for: ApiFor
) -> None:
    alice, tech = api_for(end_user_a), api_for(tech_a)
    request = post(alice, f"{REQUESTS}/", {"items": [{"catalog_item_id": catalog["mouse"]}]}).json()
    base = f"{REQUESTS}/{request['id']}"
    assert post(alice, f"{base}/comments", {"body": "wireless please"}).status_code == 201
    assert post(tech, f"{base}/comments", {"body": "check stock", "work_note": True}).status_code == 201
    assert_problem(post(alice, f"{base}/comments", {"body": "psst", "work_note": True}), 403, "forbidden")
    assert [c["body"] for c in alice.get(f"{base}/comments").json()] == ["wireless please"]
    assert [c["body"] for c in tech.get(f"{base}/comments").json()] == ["wireless please", "check stock"]


def test_other_tenants_requests_answer_like_missing_ones(
    catalog: dict[str, Any], tenant_b: Tenant, tech_ab: User, tech_a: User, end_user_b: User, api_for: ApiFor
) -> None:
    request = post(api_for(tech_a), f"{REQUESTS}/", {"items": [{"catalog_item_id": catalog["mouse"]}]}).json()
    tech = api_for(tech_ab)
    in_b = tech.get(f"/api/v1/t/globex/requests/{request['id']}")
    missing = tech.get(f"/api/v1/t/globex/requests/{uuid.uuid4()}")
    assert in_b.status_code == missing.status_code == 404
    assert {k: v for k, v in in_b.json().items() if k != "instance"} == {
        k: v for k, v in missing.json().items() if k != "instance"
    }
    assert tech.get("/api/v1/t/globex/requests/").json()["results"] == []
    assert tech.get(f"/api/v1/t/globex/catalog/items/{catalog['mouse']}").status_code == 404
    assert_problem(api_for(end_user_b).get(f"{REQUESTS}/{request['id']}"), 404, "not-found")
    before = writes(tenant_b)
    assert_problem(post(tech, f"/api/v1/t/globex/requests/{request['id']}/cancel", {}), 404, "not-found")
    assert writes(tenant_b) == before


def test_openapi_lists_the_request_paths(openapi_document: dict[str, Any]) -> None:
    document = openapi_document
    for path in (
        "/api/v1/t/{tenant}/catalog/categories",
        "/api/v1/t/{tenant}/catalog/items",
        "/api/v1/t/{tenant}/catalog/items/{item_id}",
        "/api/v1/t/{tenant}/requests/",
        "/api/v1/t/{tenant}/requests/approvals",
        "/api/v1/t/{tenant}/requests/approvals/{approval_id}/decision",
        "/api/v1/t/{tenant}/requests/approvals/{approval_id}/resend",
        "/api/v1/t/{tenant}/requests/approvals/{approval_id}/delegate",
        "/api/v1/t/{tenant}/requests/tasks/{task_id}",
        "/api/v1/t/{tenant}/requests/tasks/{task_id}/actions",
        "/api/v1/t/{tenant}/requests/{request_id}",
        "/api/v1/t/{tenant}/requests/{request_id}/items",
        "/api/v1/t/{tenant}/requests/{request_id}/approvals",
        "/api/v1/t/{tenant}/requests/{request_id}/cancel",
        "/api/v1/t/{tenant}/requests/{request_id}/comments",
        "/api/v1/t/{tenant}/requests/{request_id}/history",
    ):
        assert path in document["paths"], path
