"""The changes REST API through the test client: /api/v1/t/<tenant>/changes/..., shapes, problem+json
errors (422 naming the field, 409 for state rules), roles (technician, CAB member, end user, owner) and
tenant isolation. Every refused request also checks that nothing was written.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.test import Client
from django_tenants.utils import tenant_context

from conftest import make_user
from controlplane.accounts.models import User
from controlplane.accounts.services import provider_membership_set, tenant_membership_set
from controlplane.providers.models import Provider
from modules.changes.models import CabMember, CabVote, Change, StandardChangeTemplate
from modules.people.services import person_for_user
from modules.records.models import ActivityEntry, Comment
from tenants.models import Tenant

from .factories import T0, ci, hours, rel

BASE = "/api/v1/t/acme/changes/"
PROBLEM = "application/problem+json"
ApiFor = Callable[[User], Client]
WINDOW = {"planned_start": T0.isoformat(), "planned_end": (T0 + hours(2)).isoformat()}
PLANS = {"implementation_plan": "patch", "backout_plan": "restore", "test_plan": "smoke test"}


def post(api: Client, url: str, body: Any) -> Any:
    return api.post(url, body, content_type="application/json")


def create(api: Client, **fields: Any) -> dict[str, Any]:
    body = {"change_type": "normal", "short_description": "Patch mail01", **PLANS, **WINDOW, **fields}
    response = post(api, BASE, body)
    assert response.status_code == 201, response.content
    created: dict[str, Any] = response.json()
    return created


def act(api: Client, change_id: str, action: str, **details: str) -> Any:
    return post(api, f"{BASE}{change_id}/actions", {"action": action, **details})


def writes(tenant: Tenant) -> tuple[int, int, int, int]:
    with tenant_context(tenant):
        return (
            Change.objects.count(),
            CabVote.objects.count(),
            ActivityEntry.objects.count(),
            Comment.objects.count(),
        )


def assert_problem(response: Any, status: int, slug: str) -> dict[str, Any]:
    assert response.status_code == status, response.content
    assert response["Content-Type"] == PROBLEM
    body: dict[str, Any] = response.json()
    assert (body["type"], body["status"]) == (f"/problems/{slug}", status)
    return body


@pytest.fixture
def owner(provider: Provider, tenant_a: Tenant) -> User:
    user = make_user("owner@northwind.example")
    provider_membership_set(user=user, provider=provider, role="owner")
    return user


def cab_user(tenant: Tenant, email: str, *, on_cab: bool = True, emergency: bool = False) -> User:
    """A user with the tenant role cab_member; ``on_cab`` also puts their person on the CAB."""
    user = make_user(email)
    tenant_membership_set(user=user, tenant=tenant, role="cab_member")
    if on_cab:
        with tenant_context(tenant):
            person = person_for_user(user_id=user.pk, display_name=user.full_name, email=user.email)
            CabMember.objects.create(person=person, emergency=emergency)
    return user


@pytest.fixture
def cab_a(tenant_a: Tenant) -> User:
    return cab_user(tenant_a, "cab1@acme.example")


@pytest.fixture
def cab_a2(tenant_a: Tenant) -> User:
    return cab_user(tenant_a, "cab2@acme.example")


def test_create_get_patch_list_shapes(api_for: ApiFor, tech_a: User, tenant_a: Tenant) -> None:
    api = api_for(tech_a)
    created = create(api, description="monthly patches", category="Software")
    assert set(created) == {
        "id",
        "number",
        "change_type",
        "template_id",
        "short_description",
        "description",
        "justification",
        "category",
        "requested_by",
        "assignment_group",
        "assigned_to",
        "implementation_plan",
        "backout_plan",
        "test_plan",
        "planned_start",
        "planned_end",
        "actual_start",
        "actual_end",
        "risk",
        "risk_answers",
        "impact_summary",
        "state",
        "outcome",
        "review_notes",
        "conflicts",
        "created_at",
        "updated_at",
    }
    assert (created["number"], created["state"], created["change_type"], created["risk"]) == (
        "CHG0000001",
        "draft",
        "normal",
        "very_high",
    )
    assert created["planned_start"] == "2030-03-04T22:00:00Z"
    assert created["requested_by"]["display_name"] == tech_a.full_name
    assert created["impact_summary"] == {
        "cis": 0,
        "impacted_cis": 0,
        "business_services": 0,
        "score": {"questionnaire": 12, "impact": 0, "total": 12},
    }
    url = f"{BASE}{created['id']}"
    assert api.get(url).json() == created
    patched = api.patch(url, {"justification": "CVE-2030-1"}, content_type="application/json")
    assert patched.status_code == 200 and patched.json()["justification"] == "CVE-2030-1"
    listed = api.get(BASE + "?q=mail01")
    assert [c["number"] for c in listed.json()["results"]] == ["CHG0000001"]
    assert api.get(BASE + "?state=closed").json()["results"] == []
    history = api.get(f"{url}/history").json()
    assert [e["verb"] for e in history] == ["change.created", "change.updated"]
    assert history[1]["changes"] == {"justification": ["", "CVE-2030-1"]}


def test_errors_are_problems_naming_fields_and_states(
    api_for: ApiFor, tech_a: User, tenant_a: Tenant
) -> None:
    api = api_for(tech_a)
    missing_type = post(api, BASE, {"short_description": "x"})
    assert assert_problem(missing_type, 422, "invalid-input")["errors"][0]["field"] == "payload.change_type"
    bare = post(api, BASE, {"change_type": "normal", "short_description": "bare"}).json()
    before = writes(tenant_a)
    refused = act(api, bare["id"], "submit")
    body = assert_problem(refused, 422, "invalid-input")
    assert [e["field"] for e in body["errors"]] == [
        "implementation_plan",
        "backout_plan",
        "test_plan",
        "planned_start",
        "planned_end",
    ]
    assert writes(tenant_a) == before
    backwards = post(
        api,
        BASE,
        {
            "change_type": "normal",
            "short_description": "x",
            "planned_start": WINDOW["planned_end"],
            "planned_end": WINDOW["planned_start"],
        },
    )
    assert assert_problem(backwards, 422, "invalid-input")["errors"] == [
        {"field": "planned_end", "message": "must be after planned_start"}
    ]
    change = create(api)
    conflict = act(api, change["id"], "close")
    body = assert_problem(conflict, 409, "invalid-transition")
    assert (body["current_state"], body["allowed_actions"]) == ("draft", ["submit", "cancel"])
    act(api, change["id"], "submit")
    act(api, change["id"], "request_authorisation")
    early = act(api, change["id"], "schedule")
    body = assert_problem(early, 409, "cab-rule-not-met")
    assert body["tally"] == {
        "board": "cab",
        "quorum": 2,
        "approve": 0,
        "reject": 0,
        "abstain": 0,
        "outcome": "pending",
    }
    frozen = api.patch(f"{BASE}{change['id']}", {"test_plan": "new"}, content_type="application/json")
    assert assert_problem(frozen, 409, "change-not-editable")["fields"] == ["test_plan"]


def test_cab_votes_through_the_api(
    api_for: ApiFor, tech_a: User, cab_a: User, cab_a2: User, end_user_a: User, tenant_a: Tenant
) -> None:
    api = api_for(tech_a)
    change = create(api)
    votes_url = f"{BASE}{change['id']}/votes"
    assert_problem(post(api_for(cab_a), votes_url, {"decision": "approve"}), 409, "invalid-transition")
    act(api, change["id"], "submit")
    act(api, change["id"], "request_authorisation")
    first = post(api_for(cab_a), votes_url, {"decision": "reject", "comment": "no test evidence"})
    assert first.status_code == 200
    assert {k: v for k, v in first.json().items() if k != "votes"} == {
        "board": "cab",
        "quorum": 2,
        "approve": 0,
        "reject": 1,
        "abstain": 0,
        "ignored": 0,
        "outcome": "pending",
    }
    post(api_for(cab_a2), votes_url, {"decision": "approve"})
    changed = post(api_for(cab_a), votes_url, {"decision": "approve", "comment": "evidence attached"})
    tally = changed.json()
    assert (tally["approve"], tally["reject"], tally["outcome"]) == (2, 0, "authorised")
    assert [(v["member"]["display_name"], v["decision"], v["comment"]) for v in tally["votes"]] == [
        (cab_a2.full_name, "approve", ""),
        (cab_a.full_name, "approve", "evidence attached"),  # listed by the time of the current decision
    ]
    assert api_for(cab_a).get(votes_url).json() == tally
    # A CAB-role user who is not on the CAB, a technician, and an end user: refused, nothing written.
    outsider = cab_user(tenant_a, "not-on-cab@acme.example", on_cab=False)
    before = writes(tenant_a)
    assert_problem(post(api_for(outsider), votes_url, {"decision": "reject"}), 403, "forbidden")
    assert_problem(post(api, votes_url, {"decision": "reject"}), 403, "forbidden")
    assert_problem(post(api_for(end_user_a), votes_url, {"decision": "reject"}), 403, "forbidden")
    assert writes(tenant_a) == before
    scheduled = act(api, change["id"], "schedule")
    assert scheduled.status_code == 200 and scheduled.json()["state"] == "scheduled"


def test_cab_members_see_changes_but_cannot_work_them(
    api_for: ApiFor, tech_a: User, cab_a: User, tenant_a: Tenant
) -> None:
    change = create(api_for(tech_a))
    cab = api_for(cab_a)
    assert cab.get(f"{BASE}{change['id']}").status_code == 200
    assert [c["number"] for c in cab.get(BASE).json()["results"]] == ["CHG0000001"]
    before = writes(tenant_a)
    assert_problem(act(cab, change["id"], "submit"), 403, "forbidden")
    assert_problem(post(cab, BASE, {"change_type": "normal", "short_description": "x"}), 403, "forbidden")
    assert writes(tenant_a) == before
    comment = post(cab, f"{BASE}{change['id']}/comments", {"body": "please add a test plan"})
    assert comment.status_code == 201


def test_end_users_get_403_or_404_and_nothing_is_written(
    api_for: ApiFor, tech_a: User, end_user_a: User, tenant_a: Tenant
) -> None:
    change = create(api_for(tech_a))
    user = api_for(end_user_a)
    before = writes(tenant_a)
    assert_problem(user.get(BASE), 403, "forbidden")
    assert_problem(post(user, BASE, {"change_type": "normal", "short_description": "x"}), 403, "forbidden")
    for path in ("", "/votes", "/conflicts", "/impact", "/history", "/comments", "/cis"):
        assert_problem(user.get(f"{BASE}{change['id']}{path}"), 403, "forbidden")
    assert_problem(act(user, change["id"], "cancel"), 403, "forbidden")
    assert_problem(post(user, f"{BASE}{change['id']}/comments", {"body": "hi"}), 403, "forbidden")
    assert_problem(user.get(f"{BASE}templates"), 403, "forbidden")
    assert writes(tenant_a) == before


def test_other_tenants_ids_answer_like_missing_ones(
    api_for: ApiFor, tech_ab: User, tech_a: User, tenant_a: Tenant, tenant_b: Tenant
) -> None:
    in_b = post(
        api_for(tech_ab),
        "/api/v1/t/globex/changes/",
        {"change_type": "normal", "short_description": "B's change"},
    ).json()
    api = api_for(tech_a)
    missing = api.get(f"{BASE}0190f7a0-0000-7000-8000-000000000000")
    for client in (api, api_for(tech_ab)):
        response = client.get(f"{BASE}{in_b['id']}")
        assert response.status_code == missing.status_code == 404
        assert {k: v for k, v in response.json().items() if k != "instance"} == {
            k: v for k, v in missing.json().items() if k != "instance"
        }
    before = writes(tenant_b)
    assert_problem(act(api, in_b["id"], "cancel"), 404, "not-found")
    assert_problem(act(api_for(tech_ab), in_b["id"], "cancel"), 404, "not-found")  # under A's path
    assert writes(tenant_b) == before
    assert api.get("/api/v1/t/globex/changes/").status_code == 404  # no grant for B


def test_cis_risk_impact_and_conflicts(api_for: ApiFor, tech_a: User, tenant_a: Tenant) -> None:
    api = api_for(tech_a)
    with tenant_context(tenant_a):
        db, app, svc = ci("db01", "database"), ci("crm", "application"), ci("CRM", "business_service")
        rel(app, "depends_on", db)
        rel(svc, "depends_on", app)
        db_id, app_id = str(db.pk), str(app.pk)
    other = create(api, short_description="CRM release")
    assert post(api, f"{BASE}{other['id']}/cis", {"ci_id": app_id}).status_code == 201
    act(api, other["id"], "submit")
    change = create(api)
    url = f"{BASE}{change['id']}"
    added = post(api, f"{url}/cis", {"ci_id": db_id})
    assert added.status_code == 201
    assert added.json()["impact_summary"]["impacted_cis"] == 2
    assert_problem(post(api, f"{url}/cis", {"ci_id": db_id}), 409, "already-exists")
    unknown = post(api, f"{url}/cis", {"ci_id": change["id"]})
    assert assert_problem(unknown, 422, "invalid-input")["errors"] == [
        {"field": "ci_id", "message": "not found"}
    ]
    assert [c["name"] for c in api.get(f"{url}/cis").json()] == ["db01"]
    answers = {"done_before": "yes", "backout_tested": "yes", "downtime": "no", "users_affected": "none"}
    risk = api.put(f"{url}/risk", {"answers": answers}, content_type="application/json").json()
    assert (risk["risk"], risk["risk_answers"], risk["impact_summary"]["score"]) == (
        "moderate",
        answers,
        {"questionnaire": 0, "impact": 4, "total": 4},
    )
    bad = api.put(f"{url}/risk", {"answers": {"downtime": "often"}}, content_type="application/json")
    assert assert_problem(bad, 422, "invalid-input")["errors"][0]["field"] == "answers.downtime"
    impact = api.get(f"{url}/impact").json()
    assert impact["summary"] == {"cis": 1, "impacted_cis": 2, "business_services": 1}
    assert [(i["name"], i["depth"], i["via"]) for i in impact["cis"][0]["impacted"]] == [
        ("crm", 1, ["depends_on"]),
        ("CRM", 2, ["depends_on", "depends_on"]),
    ]
    conflicts = api.get(f"{url}/conflicts").json()
    assert [(c["kind"], c["number"], [d["name"] for d in c["dependent_cis"]]) for c in conflicts] == [
        ("change", "CHG0000001", ["crm"])
    ]
    act(api, change["id"], "submit")
    stored = act(api, change["id"], "request_authorisation").json()
    assert [c["number"] for c in stored["conflicts"]] == ["CHG0000001"]
    assert_problem(api.delete(f"{url}/cis/{db_id}"), 409, "change-not-editable")


def test_templates_cab_blackouts_and_settings_are_the_admins(
    api_for: ApiFor, tech_a: User, owner: User, tenant_a: Tenant
) -> None:
    tech, admin = api_for(tech_a), api_for(owner)
    template_body = {"name": "Restart IIS", "implementation_plan": "iisreset", "backout_plan": "none"}
    before = writes(tenant_a)
    assert_problem(post(tech, f"{BASE}templates", template_body), 403, "forbidden")
    with tenant_context(tenant_a):
        assert StandardChangeTemplate.objects.count() == 0
    assert writes(tenant_a) == before
    created = post(admin, f"{BASE}templates", template_body)
    assert created.status_code == 201 and created.json()["risk"] == "low"
    assert_problem(post(admin, f"{BASE}templates", template_body), 409, "already-exists")
    assert [t["name"] for t in tech.get(f"{BASE}templates").json()] == ["Restart IIS"]
    standard = post(
        tech, BASE, {"change_type": "standard", "template_id": created.json()["id"], **WINDOW}
    ).json()
    assert (standard["short_description"], standard["implementation_plan"], standard["risk"]) == (
        "Restart IIS",
        "iisreset",
        "low",
    )
    submitted = act(tech, standard["id"], "submit").json()
    assert submitted["state"] == "scheduled"
    assert tech.get(f"{BASE}{standard['id']}/votes").json()["outcome"] == "not_required"
    no_template = post(tech, BASE, {"change_type": "standard", "template_id": standard["id"]})
    assert assert_problem(no_template, 422, "invalid-input")["errors"][0]["field"] == "template_id"

    with tenant_context(tenant_a):
        person_id = str(
            person_for_user(user_id=tech_a.pk, display_name=tech_a.full_name, email=tech_a.email).pk
        )
    assert_problem(post(tech, f"{BASE}cab-members", {"person_id": person_id}), 403, "forbidden")
    member = post(admin, f"{BASE}cab-members", {"person_id": person_id, "emergency": True})
    assert member.status_code == 201
    assert (member.json()["person"]["display_name"], member.json()["emergency"]) == (tech_a.full_name, True)
    assert [m["emergency"] for m in tech.get(f"{BASE}cab-members").json()] == [True]
    assert admin.delete(f"{BASE}cab-members/{member.json()['id']}").status_code == 204
    assert tech.get(f"{BASE}cab-members").json() == []

    blackout = {"name": "Year end", "start": T0.isoformat(), "end": (T0 + hours(48)).isoformat()}
    assert_problem(post(tech, f"{BASE}blackout-windows", blackout), 403, "forbidden")
    made = post(admin, f"{BASE}blackout-windows", blackout)
    assert made.status_code == 201
    assert [b["name"] for b in tech.get(f"{BASE}blackout-windows").json()] == ["Year end"]
    normal = create(tech)
    assert [c["kind"] for c in tech.get(f"{BASE}{normal['id']}/conflicts").json()] == ["blackout"]

    assert tech.get(f"{BASE}settings").json() == {"cab_quorum": 2, "ecab_quorum": 1}
    assert_problem(
        tech.patch(f"{BASE}settings", {"cab_quorum": 3}, content_type="application/json"), 403, "forbidden"
    )
    changed = admin.patch(f"{BASE}settings", {"cab_quorum": 3}, content_type="application/json")
    assert changed.json() == {"cab_quorum": 3, "ecab_quorum": 1}
    assert [q["key"] for q in tech.get(f"{BASE}risk-questions").json()] == [
        "done_before",
        "backout_tested",
        "downtime",
        "users_affected",
    ]


def test_openapi_document_lists_the_change_paths(openapi_document: dict[str, Any]) -> None:
    document = openapi_document
    paths = set(document["paths"])
    for path in (
        "/api/v1/t/{tenant}/changes/",
        "/api/v1/t/{tenant}/changes/{change_id}",
        "/api/v1/t/{tenant}/changes/{change_id}/actions",
        "/api/v1/t/{tenant}/changes/{change_id}/votes",
        "/api/v1/t/{tenant}/changes/{change_id}/conflicts",
        "/api/v1/t/{tenant}/changes/templates",
        "/api/v1/t/{tenant}/changes/cab-members",
        "/api/v1/t/{tenant}/changes/blackout-windows",
        "/api/v1/t/{tenant}/changes/settings",
    ):
        assert path in paths


def test_emergency_change_through_the_api(api_for: ApiFor, tech_a: User, tenant_a: Tenant) -> None:
    api = api_for(tech_a)
    ecab = cab_user(tenant_a, "ecab@acme.example", emergency=True)
    change = post(
        api,
        BASE,
        {
            "change_type": "emergency",
            "short_description": "Block the exploit",
            "implementation_plan": "rule",
            "backout_plan": "remove",
            **WINDOW,
        },
    ).json()
    assert act(api, change["id"], "submit").json()["state"] == "authorise"
    assert_problem(act(api, change["id"], "implement"), 409, "cab-rule-not-met")
    post(api_for(ecab), f"{BASE}{change['id']}/votes", {"decision": "approve"})
    assert act(api, change["id"], "implement").json()["state"] == "implement"
    review = act(api, change["id"], "complete", outcome="successful").json()
    assert review["state"] == "review" and review["actual_end"] is not None
    assert_problem(act(api, change["id"], "close"), 422, "invalid-input")
    closed = act(api, change["id"], "close", review_notes="blocked in 10 minutes").json()
    assert (closed["state"], closed["review_notes"]) == ("closed", "blocked in 10 minutes")
