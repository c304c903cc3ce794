"""The incidents REST API: /api/v1/t/<tenant>/incidents, with problem+json errors and a valid OpenAPI."""

from __future__ import annotations

import uuid
from collections.abc import Callable

from django.test import Client
from django_tenants.utils import tenant_context
from openapi_spec_validator import validate

from conftest import make_user
from controlplane.accounts.models import User
from controlplane.accounts.services import provider_membership_set
from controlplane.providers.models import Provider
from modules.incidents.models import Incident
from modules.records.models import ActivityEntry
from tenants.models import Tenant

BASE = "/api/v1/t/acme/incidents/"


def create(api: Client, text: str, **fields: object) -> dict:
    response = api.post(BASE, {"short_description": text, **fields}, content_type="application/json")
    assert response.status_code == 201, response.content
    return response.json()


def test_create_get_patch_and_act(api_for: Callable[[User], Client], tech_a: User, tenant_a: Tenant) -> None:
    api = api_for(tech_a)
    created = create(api, "Mail down", impact=1, urgency=2)
    assert (created["number"], created["priority"], created["state"]) == ("INC0000001", 2, "new")

    patched = api.patch(f"{BASE}{created['id']}", {"urgency": 1}, content_type="application/json").json()
    assert patched["priority"] == 1
    started = api.post(f"{BASE}{created['id']}/actions", {"action": "start"}, content_type="application/json")
    assert started.json()["state"] == "in_progress"
    assert api.get(f"{BASE}{created['id']}").json()["state"] == "in_progress"
    history = api.get(f"{BASE}{created['id']}/history").json()
    assert [h["verb"] for h in history] == ["incident.created", "incident.updated", "incident.start"]
    assert history[1]["changes"]["priority"] == [2, 1]


def test_invalid_transition_is_a_409_problem_and_writes_nothing(
    api_for: Callable[[User], Client], tech_a: User, tenant_a: Tenant
) -> None:
    api = api_for(tech_a)
    incident = create(api, "Mail down")
    response = api.post(
        f"{BASE}{incident['id']}/actions", {"action": "close"}, content_type="application/json"
    )
    assert response.status_code == 409
    assert response["Content-Type"] == "application/problem+json"
    body = response.json()
    assert body["type"] == "/problems/invalid-transition" and body["status"] == 409
    assert body["current_state"] == "new" and "resolve" in body["allowed_actions"]

    missing = api.post(
        f"{BASE}{incident['id']}/actions", {"action": "resolve"}, content_type="application/json"
    )
    assert missing.status_code == 422
    assert {e["field"] for e in missing.json()["errors"]} == {"resolution_code", "resolution_notes"}
    with tenant_context(tenant_a):
        assert Incident.objects.get(pk=incident["id"]).state == "new"
        assert ActivityEntry.objects.filter(record_id=incident["id"]).count() == 1


def test_bad_input_names_the_field(api_for: Callable[[User], Client], tech_a: User, tenant_a: Tenant) -> None:
    response = api_for(tech_a).post(
        BASE, {"short_description": "x", "impact": 7}, content_type="application/json"
    )
    assert response.status_code == 422
    assert response["Content-Type"] == "application/problem+json"
    assert [e["field"] for e in response.json()["errors"]] == ["payload.impact"]
    with tenant_context(tenant_a):
        assert Incident.objects.count() == 0


def test_list_filters_and_cursor_pagination(
    api_for: Callable[[User], Client], tech_a: User, tenant_a: Tenant
) -> None:
    api = api_for(tech_a)
    ids = [
        create(api, f"issue {i}", impact=1 if i < 2 else 3, urgency=1 if i < 2 else 3)["id"] for i in range(7)
    ]
    seen: list[str] = []
    url: str | None = f"{BASE}?page_size=3&ordering=number"
    while url:
        page = api.get(url).json()
        seen += [item["id"] for item in page["results"]]
        url = page["next"]
    assert seen == ids  # ordered by number, every incident exactly once

    critical = api.get(f"{BASE}?priority=1").json()["results"]
    assert sorted(item["id"] for item in critical) == sorted(ids[:2])
    assert [item["id"] for item in api.get(f"{BASE}?q=issue 4").json()["results"]] == [ids[4]]
    assert api.get(f"{BASE}?state=resolved").json()["results"] == []


def test_end_users_see_only_their_incidents_and_no_work_notes(
    api_for: Callable[[User], Client], tech_a: User, end_user_a: User, tenant_a: Tenant
) -> None:
    technician, alice = api_for(tech_a), api_for(end_user_a)
    mine = create(alice, "my laptop", assigned_to_id=None)
    theirs = create(technician, "server room")
    technician.post(
        f"{BASE}{mine['id']}/comments",
        {"body": "internal", "work_note": True},
        content_type="application/json",
    )
    technician.post(f"{BASE}{mine['id']}/comments", {"body": "on my way"}, content_type="application/json")

    assert [i["id"] for i in alice.get(BASE).json()["results"]] == [mine["id"]]
    assert [c["body"] for c in alice.get(f"{BASE}{mine['id']}/comments").json()] == ["on my way"]
    other = alice.get(f"{BASE}{theirs['id']}")
    missing = alice.get(f"{BASE}{uuid.uuid4()}")
    assert other.status_code == missing.status_code == 404
    assert other.json()["type"] == missing.json()["type"]
    refused = alice.post(
        f"{BASE}{mine['id']}/comments", {"body": "psst", "work_note": True}, content_type="application/json"
    )
    assert refused.status_code == 403
    with tenant_context(tenant_a):
        assert not ActivityEntry.objects.filter(
            record_id=mine["id"], changes__has_key="comment_id", actor_user_id=end_user_a.pk
        ).exists()


def test_another_tenants_id_answers_like_a_missing_one(
    api_for: Callable[[User], Client], tech_ab: User, tenant_a: Tenant, tenant_b: Tenant
) -> None:
    api = api_for(tech_ab)
    in_b = api.post(
        "/api/v1/t/globex/incidents/", {"short_description": "globex only"}, content_type="application/json"
    ).json()
    under_a = api.get(f"{BASE}{in_b['id']}")
    missing = api.get(f"{BASE}{uuid.uuid4()}")
    assert under_a.status_code == missing.status_code == 404
    assert under_a.json()["type"] == missing.json()["type"]
    patched = api.patch(
        f"{BASE}{in_b['id']}", {"short_description": "hijacked"}, content_type="application/json"
    )
    assert patched.status_code == 404
    with tenant_context(tenant_b):
        assert Incident.objects.get(pk=in_b["id"]).short_description == "globex only"


def test_no_grant_no_tenant_same_answer(
    api_for: Callable[[User], Client], tech_a: User, tenant_b: Tenant
) -> None:
    api = api_for(tech_a)
    denied = api.post(
        "/api/v1/t/globex/incidents/", {"short_description": "x"}, content_type="application/json"
    )
    nowhere = api.post(
        "/api/v1/t/nowhere/incidents/", {"short_description": "x"}, content_type="application/json"
    )
    assert denied.status_code == nowhere.status_code == 404
    assert denied.json()["type"] == nowhere.json()["type"] == "/problems/not-found"
    with tenant_context(tenant_b):
        assert Incident.objects.count() == 0


def test_unauthenticated_and_csrf(client_for: Callable[..., Client], tech_a: User, tenant_a: Tenant) -> None:
    anonymous = Client(HTTP_HOST="testserver").get(BASE)
    assert anonymous.status_code == 401 and anonymous["Content-Type"] == "application/problem+json"
    browser = Client(HTTP_HOST="testserver", enforce_csrf_checks=True)
    browser.force_login(tech_a)
    assert browser.get(BASE).status_code == 200  # reads need no CSRF token
    forged = browser.post(BASE, {"short_description": "forged"}, content_type="application/json")
    assert forged.status_code == 403
    with tenant_context(tenant_a):
        assert Incident.objects.count() == 0


def test_priority_matrix_is_the_admins_to_change(
    api_for: Callable[[User], Client], tech_a: User, provider: Provider, tenant_a: Tenant
) -> None:
    owner = make_user("owner@northwind.example")
    provider_membership_set(user=owner, provider=provider, role="owner")
    url = f"{BASE}settings/priority-matrix"
    refused = api_for(tech_a).put(
        url, [{"impact": 3, "urgency": 3, "priority": 5}], content_type="application/json"
    )
    assert refused.status_code == 403
    changed = api_for(owner).put(
        url, [{"impact": 3, "urgency": 3, "priority": 5}], content_type="application/json"
    )
    assert changed.status_code == 200
    cells = {(c["impact"], c["urgency"]): c["priority"] for c in changed.json()}
    assert cells[(3, 3)] == 5 and cells[(1, 1)] == 1
    assert create(api_for(owner), "low and slow", impact=3, urgency=3)["priority"] == 5


def test_openapi_document_is_valid(db: None) -> None:
    document = Client(HTTP_HOST="testserver").get("/api/v1/openapi.json").json()
    validate(document)
    assert "/api/v1/t/{tenant}/incidents/" in document["paths"]
    assert Client(HTTP_HOST="testserver").get("/api/v1/docs").status_code == 200


def test_incident_rules_are_configurable_by_admins(
    api_for: Callable[[User], Client], tech_a: User, provider: Provider, tenant_a: Tenant
) -> None:
    owner = make_user("owner@northwind.example")
    provider_membership_set(user=owner, provider=provider, role="owner")
    url = f"{BASE}settings/rules"
    assert api_for(tech_a).get(url).json() == {"reopen_window_days": 14, "autoclose_after_days": 7}
    assert (
        api_for(tech_a).patch(url, {"reopen_window_days": 30}, content_type="application/json").status_code
        == 403
    )
    bad = api_for(owner).patch(url, {"reopen_window_days": 900}, content_type="application/json")
    assert bad.status_code == 422
    changed = api_for(owner).patch(url, {"reopen_window_days": 30}, content_type="application/json")
    assert changed.json() == {"reopen_window_days": 30, "autoclose_after_days": 7}
    with tenant_context(tenant_a):
        assert ActivityEntry.objects.filter(verb="incident_settings.changed").count() == 1
