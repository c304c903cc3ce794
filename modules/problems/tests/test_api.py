"""The problems REST API through the test client: /api/v1/t/<tenant>/problems/... Shapes, problem+json
errors (RFC 9457), linked incidents, known error search, candidates, settings, end users refused with
nothing written, and other tenants' ids answering like missing ones."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import pytest
from django.test import Client
from django_tenants.utils import tenant_context

from conftest import actor_in, make_user
from controlplane.accounts.models import User
from controlplane.accounts.services import provider_membership_set
from controlplane.providers.models import Provider
from modules.incidents.models import Incident
from modules.problems.models import KnownError, Problem
from modules.records.models import ActivityEntry, Comment
from tenants.models import Tenant

from .factories import ci, incident

BASE = "/api/v1/t/acme/problems/"
PROBLEM = "application/problem+json"
ApiFor = Callable[[User], Client]


def post(api: Client, url: str, body: Any) -> Any:
    return api.post(url, body, content_type="application/json")


def patch(api: Client, url: str, body: Any) -> Any:
    return api.patch(url, body, content_type="application/json")


def create(api: Client, text: str = "Mail outages", **fields: Any) -> dict[str, Any]:
    response = post(api, BASE, {"short_description": text, **fields})
    assert response.status_code == 201, response.content
    body: dict[str, Any] = response.json()
    return body


def act(api: Client, problem_id: str, action: str, **details: Any) -> Any:
    return post(api, f"{BASE}{problem_id}/actions", {"action": action, **details})


def writes(tenant: Tenant) -> tuple[int, int, int, int]:
    """Rows a problems request may add in ``tenant``: problems, known errors, activity entries, comments."""
    with tenant_context(tenant):
        return (
            Problem.objects.count(),
            KnownError.objects.count(),
            ActivityEntry.objects.count(),
            Comment.objects.count(),
        )


def assert_problem(response: Any, status: int, slug: str) -> dict[str, Any]:
    assert response.status_code == status, response.content
    assert response["Content-Type"] == PROBLEM
    body: dict[str, Any] = response.json()
    assert (body["type"], body["status"]) == (f"/problems/{slug}", status)
    return body


def same_answer(response: Any, missing: Any) -> None:
    """404 for both, or 403 for both where the route itself is refused to the role (controlplane.routes)."""
    assert response.status_code == missing.status_code in (403, 404)
    assert response["Content-Type"] == missing["Content-Type"] == PROBLEM
    strip = {"instance"}
    assert {k: v for k, v in response.json().items() if k not in strip} == {
        k: v for k, v in missing.json().items() if k not in strip
    }


@pytest.fixture
def owner(provider: Provider, tenant_a: Tenant) -> User:
    user = make_user("owner@northwind.example")
    provider_membership_set(user=user, provider=provider, role="owner")
    return user


PROBLEM_KEYS = {
    "id",
    "number",
    "short_description",
    "description",
    "category",
    "subcategory",
    "configuration_item",
    "impact",
    "urgency",
    "priority",
    "state",
    "assignment_group",
    "assigned_to",
    "opened_by",
    "opened_at",
    "rca_method",
    "rca_findings",
    "root_cause",
    "workaround",
    "fix_notes",
    "resolution_code",
    "resolution_notes",
    "resolved_at",
    "closed_at",
    "updated_at",
}


def test_create_get_patch_list(api_for: ApiFor, tech_a: User, tenant_a: Tenant) -> None:
    with tenant_context(tenant_a):
        relay = ci("mail-relay-01")
    api = api_for(tech_a)
    created = create(api, "Mail outages", impact=1, urgency=2, configuration_item_id=str(relay.pk))
    assert set(created) == PROBLEM_KEYS
    assert (created["number"], created["state"], created["priority"]) == ("PRB0000001", "new", 2)
    assert created["configuration_item"] == {
        "id": str(relay.pk),
        "number": relay.number,
        "name": "mail-relay-01",
    }
    assert created["opened_by"]["display_name"] == tech_a.full_name
    patched = patch(
        api,
        f"{BASE}{created['id']}",
        {
            "rca_method": "fishbone",
            "root_cause": "expired cert",
            "assigned_to_id": created["opened_by"]["id"],
        },
    )
    assert patched.status_code == 200
    body = patched.json()
    assert (body["rca_method"], body["root_cause"], body["assigned_to"]) == (
        "fishbone",
        "expired cert",
        created["opened_by"],
    )
    assert api.get(f"{BASE}{created['id']}").json() == body
    second = create(api, "VPN drops")
    listing = api.get(BASE).json()
    assert [p["id"] for p in listing["results"]] == [second["id"], created["id"]]
    assert [p["number"] for p in api.get(f"{BASE}?q=vpn").json()["results"]] == ["PRB0000002"]
    assert [p["number"] for p in api.get(f"{BASE}?state=new&ordering=number").json()["results"]] == [
        "PRB0000001",
        "PRB0000002",
    ]


def test_bad_input_is_a_422_naming_the_field_and_writes_nothing(
    api_for: ApiFor, tech_a: User, tenant_a: Tenant
) -> None:
    api = api_for(tech_a)
    before = writes(tenant_a)
    empty = assert_problem(post(api, BASE, {"short_description": ""}), 422, "invalid-input")
    assert empty["errors"][0]["field"] == "payload.short_description"
    unknown_ci = assert_problem(
        post(api, BASE, {"short_description": "x", "configuration_item_id": str(uuid.uuid4())}),
        422,
        "invalid-input",
    )
    assert unknown_ci["errors"] == [{"field": "configuration_item_id", "message": "not found"}]
    method = assert_problem(
        post(api, BASE, {"short_description": "x", "rca_method": "guess"}), 422, "invalid-input"
    )
    assert method["errors"][0]["field"] == "payload.rca_method"
    assert writes(tenant_a) == before
    created = create(api)
    null = assert_problem(patch(api, f"{BASE}{created['id']}", {"root_cause": None}), 422, "invalid-input")
    assert null["errors"] == [{"field": "root_cause", "message": "cannot be null"}]


def test_actions_state_machine_409_and_422(api_for: ApiFor, tech_a: User, tenant_a: Tenant) -> None:
    api = api_for(tech_a)
    created = create(api)
    pid = created["id"]
    unassigned = assert_problem(act(api, pid, "assess"), 422, "invalid-input")
    assert {e["field"] for e in unassigned["errors"]} == {"assignment_group", "assigned_to"}
    refused = assert_problem(act(api, pid, "close"), 409, "invalid-transition")
    assert (refused["current_state"], refused["allowed_actions"]) == ("new", ["assess", "cancel"])
    patch(api, f"{BASE}{pid}", {"assigned_to_id": created["opened_by"]["id"]})
    assert act(api, pid, "assess").json()["state"] == "assessed"
    assert act(api, pid, "start_analysis").json()["state"] == "root_cause_analysis"
    no_cause = assert_problem(act(api, pid, "start_fix"), 422, "invalid-input")
    assert no_cause["errors"] == [{"field": "root_cause", "message": "required before the fix"}]
    patch(api, f"{BASE}{pid}", {"root_cause": "cert expired"})
    assert act(api, pid, "start_fix").json()["state"] == "fix_in_progress"
    incomplete = assert_problem(act(api, pid, "resolve"), 422, "invalid-input")
    assert [e["field"] for e in incomplete["errors"]] == ["resolution_code", "resolution_notes"]
    unknown = assert_problem(act(api, pid, "explode"), 422, "invalid-input")
    assert unknown["errors"][0]["field"] == "payload.action"
    resolved = act(api, pid, "resolve", resolution_code="fix_applied", resolution_notes="renewed")
    assert (resolved.json()["state"], resolved.json()["resolution_code"]) == ("resolved", "fix_applied")
    history = api.get(f"{BASE}{pid}/history").json()
    assert [e["verb"] for e in history] == [
        "problem.created",
        "problem.updated",
        "problem.assess",
        "problem.start_analysis",
        "problem.updated",
        "problem.start_fix",
        "problem.resolve",
    ]
    assert history[-1]["changes"]["state"] == ["fix_in_progress", "resolved"]
    assert history[-1]["source"] == "api"


def test_link_list_unlink_incidents_and_resolve_them(api_for: ApiFor, tech_a: User, tenant_a: Tenant) -> None:
    api = api_for(tech_a)
    with tenant_context(tenant_a):
        actor = actor_in(tenant_a, tech_a)
        first, second = incident(actor, "mail one"), incident(actor, "mail two")
    created = create(api, root_cause="cert", assigned_to_id=None)
    pid = created["id"]
    linked = post(api, f"{BASE}{pid}/incidents", {"incident_id": str(first.pk)})
    assert linked.status_code == 201
    assert linked.json() == {
        "id": str(first.pk),
        "number": first.number,
        "short_description": "mail one",
        "state": "new",
        "priority": 3,
        "opened_at": linked.json()["opened_at"],
    }
    post(api, f"{BASE}{pid}/incidents", {"incident_id": str(second.pk)})
    twice = assert_problem(
        post(api, f"{BASE}{pid}/incidents", {"incident_id": str(first.pk)}), 409, "incident-already-linked"
    )
    assert "already linked" in twice["detail"]
    missing = assert_problem(
        post(api, f"{BASE}{pid}/incidents", {"incident_id": str(uuid.uuid4())}), 422, "invalid-input"
    )
    assert missing["errors"] == [{"field": "incident_id", "message": "not found"}]
    assert {i["number"] for i in api.get(f"{BASE}{pid}/incidents").json()} == {first.number, second.number}
    incident_api = api.get(f"/api/v1/t/acme/incidents/{first.pk}").json()
    assert incident_api["problem_id"] == pid
    unlinked = api.delete(f"{BASE}{pid}/incidents/{second.pk}")
    assert unlinked.status_code == 204
    assert_problem(api.delete(f"{BASE}{pid}/incidents/{second.pk}"), 404, "not-found")
    assert [i["number"] for i in api.get(f"{BASE}{pid}/incidents").json()] == [first.number]
    with tenant_context(tenant_a):
        Problem.objects.filter(pk=pid).update(state="fix_in_progress")
    resolved = act(
        api, pid, "resolve", resolution_code="fix_applied", resolution_notes="renewed", resolve_incidents=True
    )
    assert resolved.status_code == 200
    with tenant_context(tenant_a):
        assert dict(Incident.objects.values_list("number", "state")) == {
            first.number: "resolved",
            second.number: "new",
        }


def test_comments(api_for: ApiFor, tech_a: User, tenant_a: Tenant) -> None:
    api = api_for(tech_a)
    pid = create(api)["id"]
    added = post(api, f"{BASE}{pid}/comments", {"body": "checked relay logs"})
    assert added.status_code == 201
    assert (added.json()["body"], added.json()["is_work_note"]) == ("checked relay logs", True)
    assert [c["body"] for c in api.get(f"{BASE}{pid}/comments").json()] == ["checked relay logs"]


def test_known_errors_create_search_patch_and_act(api_for: ApiFor, tech_a: User, tenant_a: Tenant) -> None:
    api = api_for(tech_a)
    pid = create(api, "Outlook hangs", description="Outlook freezes on start", root_cause="bad add-in")["id"]
    patch(api, f"{BASE}{pid}", {"workaround": "safe mode"})
    url = f"{BASE}known-errors"
    from_problem = post(api, url, {"problem_id": pid})
    assert from_problem.status_code == 201
    ke = from_problem.json()
    assert (ke["number"], ke["state"], ke["problem"]["id"], ke["workaround"], ke["root_cause"]) == (
        "KE0000001",
        "draft",
        pid,
        "safe mode",
        "bad add-in",
    )
    post(api, url, {"title": "VPN", "symptoms": "tunnel drops", "workaround": "reconnect"})
    assert [k["number"] for k in api.get(f"{url}?q=freezing").json()["results"]] == ["KE0000001"]
    assert [k["number"] for k in api.get(f"{url}?q=dropping").json()["results"]] == ["KE0000002"]
    assert api.get(f"{url}?q=keyboard").json()["results"] == []
    bad_problem = assert_problem(post(api, url, {"problem_id": str(uuid.uuid4())}), 422, "invalid-input")
    assert bad_problem["errors"] == [{"field": "problem_id", "message": "not found"}]
    no_title = assert_problem(post(api, url, {"symptoms": "x"}), 422, "invalid-input")
    assert no_title["errors"] == [{"field": "title", "message": "required"}]
    kid = ke["id"]
    assert (
        patch(api, f"{url}/{kid}", {"permanent_fix": "remove add-in"}).json()["permanent_fix"]
        == "remove add-in"
    )
    assert post(api, f"{url}/{kid}/actions", {"action": "publish"}).json()["state"] == "published"
    assert_problem(post(api, f"{url}/{kid}/actions", {"action": "publish"}), 409, "invalid-transition")
    assert [k["number"] for k in api.get(f"{url}?state=published").json()["results"]] == ["KE0000001"]
    assert post(api, f"{url}/{kid}/actions", {"action": "retire"}).json()["state"] == "retired"
    assert_problem(patch(api, f"{url}/{kid}", {"title": "x"}), 409, "known-error-not-editable")
    assert [e["verb"] for e in api.get(f"{url}/{kid}/history").json()] == [
        "known_error.created",
        "known_error.updated",
        "known_error.publish",
        "known_error.retire",
    ]
    assert api.get(f"{url}/{kid}").json()["state"] == "retired"


def test_candidates_list_and_accept(api_for: ApiFor, tech_a: User, tenant_a: Tenant) -> None:
    with tenant_context(tenant_a):
        actor = actor_in(tenant_a, tech_a)
        members = [incident(actor, f"vpn {n}", category="network", subcategory="vpn") for n in range(3)]
    api = api_for(tech_a)
    found = api.get(f"{BASE}candidates").json()
    assert [(c["key"], c["basis"], c["count"], c["title"]) for c in found] == [
        ("category:network/vpn", "category", 3, "Recurring incidents in network / vpn")
    ]
    assert {i["number"] for i in found[0]["incidents"]} == {m.number for m in members}
    assert api.get(f"{BASE}candidates?min_incidents=4").json() == []
    accepted = post(
        api, f"{BASE}candidates", {"key": "category:network/vpn", "short_description": "VPN drops"}
    )
    assert accepted.status_code == 201
    body = accepted.json()
    assert (body["number"], body["short_description"], body["category"], body["subcategory"]) == (
        "PRB0000001",
        "VPN drops",
        "network",
        "vpn",
    )
    assert len(api.get(f"{BASE}{body['id']}/incidents").json()) == 3
    assert api.get(f"{BASE}candidates").json() == []
    assert_problem(post(api, f"{BASE}candidates", {"key": "category:network/vpn"}), 404, "not-found")


def test_settings_readable_and_admins_change(
    api_for: ApiFor, tech_a: User, owner: User, tenant_a: Tenant
) -> None:
    url = f"{BASE}settings"
    technician, admin = api_for(tech_a), api_for(owner)
    assert technician.get(url).json() == {"candidate_min_incidents": 3, "candidate_window_days": 30}
    assert_problem(patch(technician, url, {"candidate_min_incidents": 5}), 403, "forbidden")
    assert_problem(patch(admin, url, {"candidate_window_days": 0}), 422, "invalid-input")
    assert writes(tenant_a) == (0, 0, 0, 0)
    changed = patch(admin, url, {"candidate_min_incidents": 5})
    assert changed.json() == {"candidate_min_incidents": 5, "candidate_window_days": 30}


def test_end_user_is_refused_and_nothing_is_written(
    api_for: ApiFor, tech_a: User, end_user_a: User, tenant_a: Tenant
) -> None:
    tech = api_for(tech_a)
    pid = create(tech)["id"]
    kid = post(
        tech, f"{BASE}known-errors", {"title": "VPN", "symptoms": "drops", "workaround": "reconnect"}
    ).json()["id"]
    with tenant_context(tenant_a):
        own = incident(actor_in(tenant_a, end_user_a, role="end_user"), "my vpn")
    api = api_for(end_user_a)
    before = writes(tenant_a)
    assert_problem(post(api, BASE, {"short_description": "mine"}), 403, "forbidden")
    assert_problem(post(api, f"{BASE}known-errors", {"title": "x", "problem_id": pid}), 403, "forbidden")
    assert_problem(post(api, f"{BASE}candidates", {"key": "category:a/b"}), 403, "forbidden")
    assert_problem(patch(api, f"{BASE}settings", {"candidate_min_incidents": 5}), 403, "forbidden")
    missing_p, missing_k = f"{BASE}{uuid.uuid4()}", f"{BASE}known-errors/{uuid.uuid4()}"
    same_answer(api.get(f"{BASE}{pid}"), api.get(missing_p))
    same_answer(patch(api, f"{BASE}{pid}", {"description": "x"}), patch(api, missing_p, {"description": "x"}))
    same_answer(act(api, pid, "cancel"), post(api, f"{missing_p}/actions", {"action": "cancel"}))
    same_answer(
        post(api, f"{BASE}{pid}/incidents", {"incident_id": str(own.pk)}),
        post(api, f"{missing_p}/incidents", {"incident_id": str(own.pk)}),
    )
    same_answer(
        post(api, f"{BASE}{pid}/comments", {"body": "x"}), post(api, f"{missing_p}/comments", {"body": "x"})
    )
    same_answer(api.get(f"{BASE}known-errors/{kid}"), api.get(missing_k))
    same_answer(
        post(api, f"{BASE}known-errors/{kid}/actions", {"action": "retire"}),
        post(api, f"{missing_k}/actions", {"action": "retire"}),
    )
    for path in ("", "known-errors?q=drops", "candidates?min_incidents=1"):
        assert api.get(f"{BASE}{path}").status_code == 403  # problems are technicians' work
    assert writes(tenant_a) == before
    with tenant_context(tenant_a):
        assert Incident.objects.get(pk=own.pk).problem_id is None


def test_another_tenants_ids_under_this_tenants_path_answer_like_missing_ones(
    api_for: ApiFor, tech_ab: User, tenant_a: Tenant, tenant_b: Tenant
) -> None:
    api = api_for(tech_ab)
    b_problem = post(api, "/api/v1/t/globex/problems/", {"short_description": "globex only"}).json()["id"]
    b_known = post(api, "/api/v1/t/globex/problems/known-errors", {"title": "globex ke"}).json()["id"]
    with tenant_context(tenant_b):
        b_incident = incident(actor_in(tenant_b, tech_ab), "globex incident")
    a_problem = create(api, "acme")["id"]
    counts_a, counts_b = writes(tenant_a), writes(tenant_b)
    url, missing = f"{BASE}{b_problem}", f"{BASE}{uuid.uuid4()}"
    same_answer(api.get(url), api.get(missing))
    same_answer(patch(api, url, {"description": "x"}), patch(api, missing, {"description": "x"}))
    same_answer(act(api, b_problem, "cancel"), post(api, f"{missing}/actions", {"action": "cancel"}))
    same_answer(api.get(f"{url}/incidents"), api.get(f"{missing}/incidents"))
    same_answer(api.get(f"{url}/history"), api.get(f"{missing}/history"))
    kurl, kmissing = f"{BASE}known-errors/{b_known}", f"{BASE}known-errors/{uuid.uuid4()}"
    same_answer(api.get(kurl), api.get(kmissing))
    same_answer(patch(api, kurl, {"title": "x"}), patch(api, kmissing, {"title": "x"}))
    # B's incident cannot be linked to A's problem: it answers as an unknown incident.
    foreign = post(api, f"{BASE}{a_problem}/incidents", {"incident_id": str(b_incident.pk)})
    unknown = post(api, f"{BASE}{a_problem}/incidents", {"incident_id": str(uuid.uuid4())})
    assert foreign.status_code == unknown.status_code == 422
    assert foreign.json()["errors"] == unknown.json()["errors"]
    # B's problem as the source of a known error in A answers as an unknown problem.
    assert_problem(post(api, f"{BASE}known-errors", {"problem_id": b_problem}), 422, "invalid-input")
    assert [p["id"] for p in api.get(BASE).json()["results"]] == [a_problem]
    assert writes(tenant_a) == counts_a and writes(tenant_b) == counts_b


def test_openapi_lists_the_problem_paths(openapi_document: dict[str, Any]) -> None:
    document = openapi_document
    prefix = "/api/v1/t/{tenant}/problems"
    for path in (
        "/",
        "/{problem_id}",
        "/{problem_id}/actions",
        "/{problem_id}/incidents",
        "/{problem_id}/incidents/{incident_id}",
        "/{problem_id}/comments",
        "/{problem_id}/history",
        "/known-errors",
        "/known-errors/{known_error_id}",
        "/known-errors/{known_error_id}/actions",
        "/candidates",
        "/settings",
    ):
        assert f"{prefix}{path}" in document["paths"], path
    assert set(document["paths"][f"{prefix}/candidates"]) == {"get", "post"}
