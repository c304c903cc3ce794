"""The incidents REST API through the test client: /api/v1/t/<tenant>/incidents/..., token and session
authentication, problem+json errors (RFC 9457), cursor pagination, tenant and caller scoping, OpenAPI.

Every refused request also checks that nothing was written in the tenant it aimed at.
"""

from __future__ import annotations

import uuid
from base64 import b64encode
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
from django.test import Client
from django_tenants.utils import tenant_context

from conftest import make_user
from controlplane.accounts.models import User
from controlplane.accounts.services import (
    api_token_create,
    api_token_revoke,
    provider_membership_set,
    tenant_membership_set,
)
from controlplane.providers.models import Provider
from modules.incidents.models import Incident, PriorityRule
from modules.records.models import ActivityEntry, Comment
from tenants.models import Tenant

BASE = "/api/v1/t/acme/incidents/"
PROBLEM = "application/problem+json"
ApiFor = Callable[[User], Client]


def post(api: Client, url: str, body: Any) -> Any:
    return api.post(url, body, content_type="application/json")


def create(api: Client, text: str, **fields: Any) -> dict[str, Any]:
    response = post(api, BASE, {"short_description": text, **fields})
    assert response.status_code == 201, response.content
    body: dict[str, Any] = response.json()
    return body


def act(api: Client, incident_id: str, action: str, **details: str) -> Any:
    return post(api, f"{BASE}{incident_id}/actions", {"action": action, **details})


def resolve(api: Client, incident_id: str) -> Any:
    response = act(
        api, incident_id, "resolve", resolution_code="solved_permanently", resolution_notes="replaced cable"
    )
    assert response.status_code == 200, response.content
    return response.json()


def writes(tenant: Tenant) -> tuple[int, int, int]:
    """Rows an incident request may add in ``tenant``: incidents, activity entries, comments."""
    with tenant_context(tenant):
        return Incident.objects.count(), ActivityEntry.objects.count(), Comment.objects.count()


def stored(tenant: Tenant, incident_id: str) -> dict[str, Any]:
    with tenant_context(tenant):
        return dict(Incident.objects.filter(pk=incident_id).values().get())


def assert_problem(response: Any, status: int, slug: str) -> dict[str, Any]:
    assert response.status_code == status, response.content
    assert response["Content-Type"] == PROBLEM
    body: dict[str, Any] = response.json()
    assert (body["type"], body["status"]) == (f"/problems/{slug}", status)
    return body


def same_answer(response: Any, missing: Any) -> None:
    """Two responses a client cannot tell apart (the ``instance`` member is the request path): 404, or
    403 where the route itself is refused to the role (controlplane.routes) before any record is read."""
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


@pytest.fixture
def carol(tenant_a: Tenant) -> User:
    """A second end user of tenant A."""
    user = make_user("carol@acme.example")
    tenant_membership_set(user=user, tenant=tenant_a, role="end_user")
    return user


# Create, get, patch, list


def test_create_get_patch_and_list(api_for: ApiFor, tech_a: User, tenant_a: Tenant) -> None:
    api = api_for(tech_a)
    response = post(
        api,
        BASE,
        {"short_description": "Mail down", "description": "since 9:00", "impact": 1, "urgency": 2},
    )
    assert response.status_code == 201
    created = response.json()
    assert (created["number"], created["state"], created["priority"]) == ("INC0000001", "new", 2)
    assert (created["impact"], created["urgency"], created["contact_type"]) == (1, 2, "self_service")
    assert created["description"] == "since 9:00"
    assert created["caller"]["display_name"] == tech_a.full_name
    assert (created["assignment_group"], created["assigned_to"], created["closed_at"]) == (None, None, None)
    with tenant_context(tenant_a):
        row = Incident.objects.get(pk=created["id"])
        assert (row.number, row.short_description, row.priority) == ("INC0000001", "Mail down", 2)
        entry = ActivityEntry.objects.get(record_id=row.pk)
        assert (entry.verb, entry.source, entry.actor_user_id) == ("incident.created", "api", tech_a.pk)

    fetched = api.get(f"{BASE}{created['id']}")
    assert fetched.status_code == 200 and fetched.json() == created

    patched = api.patch(
        f"{BASE}{created['id']}",
        {"urgency": 1, "category": "email", "assigned_to_id": created["caller"]["id"]},
        content_type="application/json",
    )
    assert patched.status_code == 200
    body = patched.json()
    assert (body["urgency"], body["priority"], body["category"]) == (1, 1, "email")
    assert body["assigned_to"] == created["caller"] and body["reassignment_count"] == 0
    assert api.get(f"{BASE}{created['id']}").json()["priority"] == 1

    second = create(api, "Printer jam", impact=3, urgency=3)
    listing = api.get(BASE)
    assert listing.status_code == 200
    page = listing.json()
    assert [i["id"] for i in page["results"]] == [second["id"], created["id"]]  # newest first
    assert (page["next"], page["previous"]) == (None, None)


def test_create_with_bad_input_is_a_422_naming_the_field_and_writes_nothing(
    api_for: ApiFor, tech_a: User, tenant_a: Tenant
) -> None:
    api = api_for(tech_a)
    bad_impact = post(api, BASE, {"short_description": "x", "impact": 7})
    assert [e["field"] for e in assert_problem(bad_impact, 422, "invalid-input")["errors"]] == [
        "payload.impact"
    ]
    blank = post(api, BASE, {"short_description": "   "})
    assert [e["field"] for e in assert_problem(blank, 422, "invalid-input")["errors"]] == [
        "short_description"
    ]
    unknown_group = post(api, BASE, {"short_description": "x", "assignment_group_id": str(uuid.uuid4())})
    errors = assert_problem(unknown_group, 422, "invalid-input")["errors"]
    assert [e["field"] for e in errors] == ["assignment_group_id"]
    assert writes(tenant_a) == (0, 0, 0)


def test_patch_with_null_for_a_required_field_is_a_422_and_changes_nothing(
    api_for: ApiFor, tech_a: User, tenant_a: Tenant
) -> None:
    """Explicit JSON null for a non-nullable field must be refused like any other bad input, not a 500.

    Fails until fixed: IncidentPatch lets ``null`` through (``str | None``) and incident_update then calls
    ``None.strip()`` (short_description) or saves NULL into a NOT NULL column (description, contact_type).
    """
    api = api_for(tech_a)
    api.raise_request_exception = False
    incident = create(api, "Mail down")
    before, counts = stored(tenant_a, incident["id"]), writes(tenant_a)
    answers = {}
    for field in ("short_description", "description", "contact_type"):
        response = api.patch(f"{BASE}{incident['id']}", {field: None}, content_type="application/json")
        named = response["Content-Type"] == PROBLEM and any(
            e["field"].endswith(field) for e in response.json().get("errors", [])
        )
        answers[field] = (response.status_code, named)
    assert answers == {field: (422, True) for field in answers}
    assert stored(tenant_a, incident["id"]) == before and writes(tenant_a) == counts


def test_list_filters(api_for: ApiFor, tech_a: User, tenant_a: Tenant) -> None:
    api = api_for(tech_a)
    mail = create(api, "Mail down", impact=1, urgency=1)  # priority 1
    vpn = create(api, "VPN drops", impact=1, urgency=2)  # priority 2
    printer = create(api, "Printer jam", impact=3, urgency=3)  # priority 4
    laptop = create(api, "Laptop slow", impact=3, urgency=3)  # priority 4
    old = create(api, "Old mail issue", impact=2, urgency=2)  # priority 3
    assert act(api, vpn["id"], "start").status_code == 200
    assert act(api, laptop["id"], "hold", hold_reason="awaiting_user_info").status_code == 200
    resolve(api, old["id"])

    def ids(query: str) -> set[str]:
        response = api.get(f"{BASE}?{query}")
        assert response.status_code == 200, response.content
        return {i["id"] for i in response.json()["results"]}

    assert ids("state=new") == {mail["id"], printer["id"]}
    assert ids("state=in_progress&state=on_hold") == {vpn["id"], laptop["id"]}
    assert ids("state=resolved") == {old["id"]}
    assert ids("state=closed") == set()
    assert ids("priority=4") == {printer["id"], laptop["id"]}
    assert ids("priority=1&priority=2") == {mail["id"], vpn["id"]}
    assert ids("open_only=true") == {mail["id"], vpn["id"], printer["id"], laptop["id"]}
    assert ids("open_only=true&priority=4") == {printer["id"], laptop["id"]}
    assert ids("q=mail") == {mail["id"], old["id"]}
    assert ids("q=MAIL+DOWN") == {mail["id"]}
    assert ids(f"q={printer['number'].lower()}") == {printer["id"]}
    assert ids("q=nothing+like+this") == set()
    bad = api.get(f"{BASE}?state=bogus")
    assert_problem(bad, 422, "invalid-input")


def test_cursor_pagination_visits_every_incident_exactly_once(
    api_for: ApiFor, tech_a: User, tenant_a: Tenant
) -> None:
    api = api_for(tech_a)
    ids = [create(api, f"issue {i}")["id"] for i in range(5)]

    def walk(url: str | None) -> tuple[list[str], list[int]]:
        seen: list[str] = []
        sizes: list[int] = []
        while url:
            response = api.get(url)
            assert response.status_code == 200, response.content
            page = response.json()
            seen += [item["id"] for item in page["results"]]
            sizes.append(len(page["results"]))
            url = page["next"]
        return seen, sizes

    newest_first, sizes = walk(f"{BASE}?page_size=2")
    assert newest_first == ids[::-1] and sizes == [2, 2, 1]
    by_number, _ = walk(f"{BASE}?page_size=2&ordering=number")
    assert by_number == ids
    by_number_desc, _ = walk(f"{BASE}?page_size=2&ordering=-number")
    assert by_number_desc == ids[::-1]
    filtered, sizes = walk(f"{BASE}?page_size=1&ordering=number&q=issue+3")  # filters survive in `next`
    assert filtered == [ids[3]] and sizes == [1]


def test_cursor_pagination_with_ties_in_the_ordering(api_for: ApiFor, tech_a: User, tenant_a: Tenant) -> None:
    api = api_for(tech_a)
    levels = [(2, 2), (2, 2), (2, 2), (1, 1), (3, 3)]  # priorities 3, 3, 3, 1, 4
    ids = [create(api, f"issue {i}", impact=i_, urgency=u)["id"] for i, (i_, u) in enumerate(levels)]
    seen: list[str] = []
    url: str | None = f"{BASE}?page_size=2&ordering=priority"
    while url:
        page = api.get(url).json()
        seen += [item["id"] for item in page["results"]]
        url = page["next"]
    assert seen == [ids[3], ids[0], ids[1], ids[2], ids[4]]  # priority, then id (UUIDv7: creation order)


def test_a_tampered_cursor_is_a_422_not_a_500(api_for: ApiFor, tech_a: User, tenant_a: Tenant) -> None:
    """A cursor is client input. Fails until fixed: the position in a cursor made for one ordering (or
    edited by hand) goes straight into a filter, and Django's ValueError/ValidationError becomes a 500."""
    api = api_for(tech_a)
    api.raise_request_exception = False
    for i in range(3):
        create(api, f"issue {i}")
    next_by_opened = api.get(f"{BASE}?page_size=1").json()["next"]
    cursor = parse_qs(urlsplit(next_by_opened).query)["cursor"][0]  # its position is a timestamp
    answers = [
        api.get(f"{BASE}?{urlencode({'page_size': 1, 'ordering': 'priority', 'cursor': cursor})}"),
        api.get(f"{BASE}?{urlencode({'cursor': b64encode(b'p=not-a-time').decode()})}"),
    ]
    assert [(r.status_code, r["Content-Type"]) for r in answers] == [(422, PROBLEM), (422, PROBLEM)]


def test_ordering_param(api_for: ApiFor, tech_a: User, tenant_a: Tenant) -> None:
    api = api_for(tech_a)
    low = create(api, "low", impact=3, urgency=3)
    critical = create(api, "critical", impact=1, urgency=1)
    moderate = create(api, "moderate", impact=2, urgency=2)

    def order(ordering: str) -> list[str]:
        response = api.get(f"{BASE}?ordering={ordering}")
        assert response.status_code == 200, response.content
        return [i["short_description"] for i in response.json()["results"]]

    assert order("number") == ["low", "critical", "moderate"]
    assert order("-number") == ["moderate", "critical", "low"]
    assert order("priority") == ["critical", "moderate", "low"]
    assert order("-priority") == ["low", "moderate", "critical"]
    assert order("opened_at") == ["low", "critical", "moderate"]
    assert order("-opened_at") == ["moderate", "critical", "low"]
    assert {low["id"], critical["id"], moderate["id"]} == {i["id"] for i in api.get(BASE).json()["results"]}
    assert_problem(api.get(f"{BASE}?ordering=short_description"), 422, "invalid-input")


# Actions


def test_actions_follow_the_state_machine(api_for: ApiFor, tech_a: User, tenant_a: Tenant) -> None:
    api = api_for(tech_a)
    incident = create(api, "Mail down")
    held = act(api, incident["id"], "hold", hold_reason="awaiting_vendor")
    assert held.status_code == 200
    assert (held.json()["state"], held.json()["hold_reason"]) == ("on_hold", "awaiting_vendor")
    assert act(api, incident["id"], "resume").json()["state"] == "in_progress"
    resolved = resolve(api, incident["id"])
    assert (resolved["state"], resolved["resolution_code"]) == ("resolved", "solved_permanently")
    assert resolved["resolved_at"] is not None
    closed = act(api, incident["id"], "close", comment="confirmed by caller")
    assert closed.status_code == 200 and closed.json()["state"] == "closed"
    reopened = act(api, incident["id"], "reopen").json()
    assert (reopened["state"], reopened["reopen_count"], reopened["closed_at"]) == ("in_progress", 1, None)
    with tenant_context(tenant_a):
        assert list(Comment.objects.values_list("body", flat=True)) == ["confirmed by caller"]


def test_invalid_transition_is_a_409_problem_and_writes_nothing(
    api_for: ApiFor, tech_a: User, tenant_a: Tenant
) -> None:
    api = api_for(tech_a)
    incident = create(api, "Mail down")
    before, counts = stored(tenant_a, incident["id"]), writes(tenant_a)
    response = act(api, incident["id"], "close")
    body = assert_problem(response, 409, "invalid-transition")
    assert body["title"] == "This state change is not allowed"
    assert body["current_state"] == "new"
    assert body["allowed_actions"] == ["start", "hold", "resolve", "cancel"]
    assert body["instance"] == f"{BASE}{incident['id']}/actions"
    assert stored(tenant_a, incident["id"]) == before and writes(tenant_a) == counts


def test_resolve_without_details_is_a_422_naming_the_fields(
    api_for: ApiFor, tech_a: User, tenant_a: Tenant
) -> None:
    api = api_for(tech_a)
    incident = create(api, "Mail down")
    before, counts = stored(tenant_a, incident["id"]), writes(tenant_a)
    response = act(api, incident["id"], "resolve", comment="done")
    body = assert_problem(response, 422, "invalid-input")
    assert [e["field"] for e in body["errors"]] == ["resolution_code", "resolution_notes"]
    hold = assert_problem(act(api, incident["id"], "hold"), 422, "invalid-input")
    assert [e["field"] for e in hold["errors"]] == ["hold_reason"]
    unknown = assert_problem(act(api, incident["id"], "escalate"), 422, "invalid-input")
    assert [e["field"] for e in unknown["errors"]] == ["payload.action"]
    assert stored(tenant_a, incident["id"]) == before and writes(tenant_a) == counts


# Comments and history


def test_comments_and_history(api_for: ApiFor, tech_a: User, tenant_a: Tenant) -> None:
    api = api_for(tech_a)
    incident = create(api, "Mail down")
    url = f"{BASE}{incident['id']}"
    note = post(api, f"{url}/comments", {"body": "checked the MX records", "work_note": True})
    assert note.status_code == 201
    assert (note.json()["body"], note.json()["is_work_note"]) == ("checked the MX records", True)
    assert note.json()["author"]["display_name"] == tech_a.full_name
    public = post(api, f"{url}/comments", {"body": "working on it"})
    assert public.status_code == 201 and public.json()["is_work_note"] is False
    empty = post(api, f"{url}/comments", {"body": ""})
    assert [e["field"] for e in assert_problem(empty, 422, "invalid-input")["errors"]] == ["payload.body"]
    assert act(api, incident["id"], "start").status_code == 200

    comments = api.get(f"{url}/comments")
    assert comments.status_code == 200
    assert [(c["body"], c["is_work_note"]) for c in comments.json()] == [
        ("checked the MX records", True),
        ("working on it", False),
    ]
    history = api.get(f"{url}/history")
    assert history.status_code == 200
    entries = history.json()
    assert [e["verb"] for e in entries] == [
        "incident.created",
        "work_note.added",
        "comment.added",
        "incident.start",
    ]
    assert entries[1]["changes"] == {"comment_id": note.json()["id"]}
    assert entries[3]["changes"] == {"state": ["new", "in_progress"]}
    assert {e["source"] for e in entries} == {"api"}
    assert {e["actor"]["display_name"] for e in entries} == {tech_a.full_name}


# End users


def test_end_user_sees_only_their_own_incidents_and_no_work_notes(
    api_for: ApiFor, tech_a: User, end_user_a: User, tenant_a: Tenant
) -> None:
    technician, alice = api_for(tech_a), api_for(end_user_a)
    mine = create(alice, "my laptop", impact=3, urgency=3)
    assert mine["caller"]["display_name"] == end_user_a.full_name
    create(technician, "server room")
    url = f"{BASE}{mine['id']}"
    assert post(technician, f"{url}/comments", {"body": "user is VIP", "work_note": True}).status_code == 201
    assert post(technician, f"{url}/comments", {"body": "on my way"}).status_code == 201

    assert [i["id"] for i in alice.get(BASE).json()["results"]] == [mine["id"]]
    assert alice.get(url).json()["id"] == mine["id"]
    assert [c["body"] for c in alice.get(f"{url}/comments").json()] == ["on my way"]
    assert [e["verb"] for e in alice.get(f"{url}/history").json()] == ["incident.created", "comment.added"]
    assert [c["body"] for c in technician.get(f"{url}/comments").json()] == ["user is VIP", "on my way"]


def test_end_user_is_forced_to_report_for_themselves(
    api_for: ApiFor, tech_a: User, end_user_a: User, tenant_a: Tenant
) -> None:
    technician = create(api_for(tech_a), "seed the technician's person")  # mirrors tech_a into acme
    mine = create(
        api_for(end_user_a),
        "wifi",
        caller_id=technician["caller"]["id"],
        assigned_to_id=technician["caller"]["id"],
        contact_type="phone",
    )
    assert mine["caller"]["display_name"] == end_user_a.full_name
    assert (mine["assigned_to"], mine["contact_type"]) == (None, "self_service")


def test_end_user_cannot_patch_work_or_write_work_notes(
    api_for: ApiFor, tech_a: User, end_user_a: User, tenant_a: Tenant
) -> None:
    alice = api_for(end_user_a)
    mine = create(alice, "my laptop")
    url = f"{BASE}{mine['id']}"
    before, counts = stored(tenant_a, mine["id"]), writes(tenant_a)
    assert_problem(alice.patch(url, {"impact": 1}, content_type="application/json"), 403, "forbidden")
    assert_problem(act(alice, mine["id"], "start"), 403, "forbidden")
    assert_problem(post(alice, f"{url}/comments", {"body": "psst", "work_note": True}), 403, "forbidden")
    assert stored(tenant_a, mine["id"]) == before and writes(tenant_a) == counts

    resolve(api_for(tech_a), mine["id"])
    reopened = act(alice, mine["id"], "reopen", comment="still broken")
    assert reopened.status_code == 200 and reopened.json()["state"] == "in_progress"


def test_another_end_users_incident_answers_like_a_missing_one(
    api_for: ApiFor, end_user_a: User, carol: User, tenant_a: Tenant
) -> None:
    alice = api_for(end_user_a)
    theirs = create(api_for(carol), "carol's laptop")
    url, missing_url = f"{BASE}{theirs['id']}", f"{BASE}{uuid.uuid4()}"
    before, counts = stored(tenant_a, theirs["id"]), writes(tenant_a)

    same_answer(alice.get(url), alice.get(missing_url))
    same_answer(alice.get(f"{url}/comments"), alice.get(f"{missing_url}/comments"))
    same_answer(alice.get(f"{url}/history"), alice.get(f"{missing_url}/history"))
    same_answer(
        alice.patch(url, {"short_description": "mine now"}, content_type="application/json"),
        alice.patch(missing_url, {"short_description": "mine now"}, content_type="application/json"),
    )
    same_answer(
        act(alice, theirs["id"], "reopen"), post(alice, f"{missing_url}/actions", {"action": "reopen"})
    )
    same_answer(
        post(alice, f"{url}/comments", {"body": "hi"}), post(alice, f"{missing_url}/comments", {"body": "hi"})
    )
    assert alice.get(BASE).json()["results"] == []
    assert alice.get(f"{BASE}?caller={theirs['caller']['id']}").json()["results"] == []
    assert stored(tenant_a, theirs["id"]) == before and writes(tenant_a) == counts


# Tenant isolation


def test_another_tenants_id_under_this_tenants_path_answers_like_a_missing_one(
    api_for: ApiFor, tech_ab: User, tenant_a: Tenant, tenant_b: Tenant
) -> None:
    api = api_for(tech_ab)
    in_b = post(api, "/api/v1/t/globex/incidents/", {"short_description": "globex only"})
    assert in_b.status_code == 201
    b_id = in_b.json()["id"]
    url, missing_url = f"{BASE}{b_id}", f"{BASE}{uuid.uuid4()}"
    before_b, counts_a, counts_b = stored(tenant_b, b_id), writes(tenant_a), writes(tenant_b)

    same_answer(api.get(url), api.get(missing_url))
    same_answer(
        api.patch(url, {"short_description": "hijacked"}, content_type="application/json"),
        api.patch(missing_url, {"short_description": "hijacked"}, content_type="application/json"),
    )
    same_answer(act(api, b_id, "cancel"), post(api, f"{missing_url}/actions", {"action": "cancel"}))
    same_answer(
        post(api, f"{url}/comments", {"body": "x"}), post(api, f"{missing_url}/comments", {"body": "x"})
    )
    assert api.get(BASE).json()["results"] == []
    assert stored(tenant_b, b_id) == before_b
    assert writes(tenant_a) == counts_a and writes(tenant_b) == counts_b


def test_a_tenant_without_a_grant_answers_like_a_missing_tenant(
    api_for: ApiFor, tech_a: User, tenant_a: Tenant, tenant_b: Tenant
) -> None:
    api = api_for(tech_a)
    same_answer(api.get("/api/v1/t/globex/incidents/"), api.get("/api/v1/t/no-such-tenant/incidents/"))
    denied = post(api, "/api/v1/t/globex/incidents/", {"short_description": "x"})
    nowhere = post(api, "/api/v1/t/no-such-tenant/incidents/", {"short_description": "x"})
    same_answer(denied, nowhere)
    assert denied.json()["type"] == "/problems/not-found"
    assert writes(tenant_b) == (0, 0, 0)
    assert writes(tenant_a) == (0, 0, 0)


# Authentication and CSRF


def test_no_credentials_is_a_401_problem(tenant_a: Tenant) -> None:
    anonymous = Client(HTTP_HOST="testserver")
    assert_problem(anonymous.get(BASE), 401, "unauthenticated")
    assert_problem(post(anonymous, BASE, {"short_description": "x"}), 401, "unauthenticated")
    assert writes(tenant_a) == (0, 0, 0)


def test_an_invalid_or_revoked_token_is_a_401_and_never_falls_back_to_the_session(
    tech_a: User, tenant_a: Tenant
) -> None:
    forged = Client(HTTP_HOST="testserver", HTTP_AUTHORIZATION="Bearer itsm_00000000_not-a-real-token")
    assert_problem(forged.get(BASE), 401, "unauthenticated")
    assert_problem(post(forged, BASE, {"short_description": "x"}), 401, "unauthenticated")

    signed_in = Client(HTTP_HOST="testserver", HTTP_AUTHORIZATION="Bearer wrong")
    signed_in.force_login(tech_a, backend="django.contrib.auth.backends.ModelBackend")
    assert_problem(signed_in.get(BASE), 401, "unauthenticated")

    token, secret = api_token_create(user=tech_a, name="revoked")
    api_token_revoke(user=tech_a, token_id=token.pk)
    revoked = Client(HTTP_HOST="testserver", HTTP_AUTHORIZATION=f"Bearer {secret}")
    assert_problem(revoked.get(BASE), 401, "unauthenticated")
    assert writes(tenant_a) == (0, 0, 0)


def test_session_post_without_csrf_token_is_refused_and_writes_nothing(
    client_for: Callable[..., Client], tech_a: User, tenant_a: Tenant
) -> None:
    browser = Client(enforce_csrf_checks=True, HTTP_HOST="testserver")
    browser.force_login(tech_a, backend="django.contrib.auth.backends.ModelBackend")
    assert browser.get(BASE).status_code == 200  # reads need no CSRF token
    forged = post(browser, BASE, {"short_description": "forged"})
    assert_problem(forged, 403, "forbidden")
    assert writes(tenant_a) == (0, 0, 0)

    incident = create(client_for(tech_a), "made in another tab")
    before, counts = stored(tenant_a, incident["id"]), writes(tenant_a)
    url = f"{BASE}{incident['id']}"
    assert_problem(browser.patch(url, {"impact": 1}, content_type="application/json"), 403, "forbidden")
    assert_problem(post(browser, f"{url}/actions", {"action": "cancel"}), 403, "forbidden")
    assert_problem(post(browser, f"{url}/comments", {"body": "x"}), 403, "forbidden")
    assert stored(tenant_a, incident["id"]) == before and writes(tenant_a) == counts


def test_session_post_with_csrf_token_is_accepted(tech_a: User, tenant_a: Tenant) -> None:
    browser = Client(enforce_csrf_checks=True, HTTP_HOST="testserver")
    browser.force_login(tech_a, backend="django.contrib.auth.backends.ModelBackend")
    secret = "a" * 32
    browser.cookies["csrftoken"] = secret
    response = browser.post(
        BASE,
        {"short_description": "from the browser"},
        content_type="application/json",
        HTTP_X_CSRFTOKEN=secret,
    )
    assert response.status_code == 201, response.content
    assert writes(tenant_a)[0] == 1


def test_token_post_needs_no_csrf_token(tech_a: User, tenant_a: Tenant) -> None:
    _, secret = api_token_create(user=tech_a, name="script")
    script = Client(enforce_csrf_checks=True, HTTP_HOST="testserver", HTTP_AUTHORIZATION=f"Bearer {secret}")
    response = post(script, BASE, {"short_description": "from a script"})
    assert response.status_code == 201, response.content
    with tenant_context(tenant_a):
        assert list(Incident.objects.values_list("short_description", flat=True)) == ["from a script"]


# OpenAPI


def test_openapi_document_is_valid_and_lists_the_incident_paths(openapi_document: dict[str, Any]) -> None:
    document = openapi_document
    for path in (
        "/api/v1/t/{tenant}/incidents/",
        "/api/v1/t/{tenant}/incidents/{incident_id}",
        "/api/v1/t/{tenant}/incidents/{incident_id}/actions",
        "/api/v1/t/{tenant}/incidents/{incident_id}/comments",
        "/api/v1/t/{tenant}/incidents/{incident_id}/history",
        "/api/v1/t/{tenant}/incidents/settings/priority-matrix",
    ):
        assert path in document["paths"], path
    assert set(document["paths"]["/api/v1/t/{tenant}/incidents/"]) == {"get", "post"}
    assert Client(HTTP_HOST="testserver").get("/api/v1/docs").status_code == 200


# Settings


def matrix(tenant: Tenant) -> dict[tuple[int, int], int]:
    with tenant_context(tenant):
        return {(r.impact, r.urgency): r.priority for r in PriorityRule.objects.all()}


def test_priority_matrix_is_readable_and_the_owners_to_change(
    api_for: ApiFor, tech_a: User, owner: User, tenant_a: Tenant
) -> None:
    url = f"{BASE}settings/priority-matrix"
    technician = api_for(tech_a)
    default = matrix(tenant_a)
    cells = technician.get(url)
    assert cells.status_code == 200
    assert {(c["impact"], c["urgency"]): c["priority"] for c in cells.json()} == default
    assert len(default) == 9

    refused = technician.put(
        url, [{"impact": 3, "urgency": 3, "priority": 5}], content_type="application/json"
    )
    assert_problem(refused, 403, "forbidden")
    assert matrix(tenant_a) == default
    assert writes(tenant_a) == (0, 0, 0)

    admin = api_for(owner)
    out_of_range = admin.put(
        url, [{"impact": 3, "urgency": 3, "priority": 9}], content_type="application/json"
    )
    assert_problem(out_of_range, 422, "invalid-input")
    assert matrix(tenant_a) == default

    changed = admin.put(url, [{"impact": 3, "urgency": 3, "priority": 5}], content_type="application/json")
    assert changed.status_code == 200
    assert {(c["impact"], c["urgency"]): c["priority"] for c in changed.json()} == {**default, (3, 3): 5}
    assert matrix(tenant_a) == {**default, (3, 3): 5}
    assert create(technician, "low and slow", impact=3, urgency=3)["priority"] == 5
    with tenant_context(tenant_a):
        entry = ActivityEntry.objects.get(verb="priority_matrix.changed")
        assert (entry.changes, entry.actor_user_id, entry.source) == ({"3x3": [4, 5]}, owner.pk, "api")


def test_incident_rules_are_readable_and_the_owners_to_change(
    api_for: ApiFor, tech_a: User, owner: User, tenant_a: Tenant
) -> None:
    url = f"{BASE}settings/rules"
    technician, admin = api_for(tech_a), api_for(owner)
    assert technician.get(url).json() == {"reopen_window_days": 14, "autoclose_after_days": 7}
    refused = technician.patch(url, {"reopen_window_days": 30}, content_type="application/json")
    assert_problem(refused, 403, "forbidden")
    bad = admin.patch(url, {"reopen_window_days": 900}, content_type="application/json")
    assert_problem(bad, 422, "invalid-input")
    assert writes(tenant_a) == (0, 0, 0)
    changed = admin.patch(url, {"reopen_window_days": 30}, content_type="application/json")
    assert changed.json() == {"reopen_window_days": 30, "autoclose_after_days": 7}
    with tenant_context(tenant_a):
        entry = ActivityEntry.objects.get(verb="incident_settings.changed")
        assert entry.changes == {"reopen_window_days": [14, 30]}


def test_json_constants_outside_the_standard_are_refused(
    api_for: ApiFor, tech_a: User, tenant_a: Tenant
) -> None:
    """NaN and Infinity are not JSON (RFC 8259): a 400 problem, never a 500 from the database."""
    body = '{"short_description": "Disk full", "description": "x", "impact": NaN}'
    response = api_for(tech_a).post(BASE, body, content_type="application/json")
    assert response.status_code == 400 and response["Content-Type"] == PROBLEM
    assert response.json()["type"] == "/problems/bad-request"
    with tenant_context(tenant_a):
        assert Incident.objects.count() == 0
