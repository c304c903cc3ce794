"""Portal pages of the catalog, "my requests and incidents" and approvals, on the tenant's own host
(``acme.localhost``, sent as the Host header), through the test client against the real database."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django_tenants.utils import tenant_context

from conftest import actor_in, make_user
from controlplane.accounts.models import User
from controlplane.accounts.services import tenant_membership_set
from modules.incidents.services import incident_create
from modules.people.models import Person
from modules.records.actor import Actor
from modules.records.models import ActivityEntry, Comment
from modules.requests.models import Approval, CatalogItem, ServiceRequest
from modules.requests.orderform import schema_conditions, schema_properties
from modules.requests.services import (
    StepSpec,
    approval_decide,
    approval_delegate,
    request_comment,
    request_submit,
)
from tenants.models import Tenant

from .factories import LAPTOP_SCHEMA, ci, group, item

HOST = "acme.localhost"


@dataclass
class Scene:
    tenant: Tenant
    tech: Actor
    alice_user: User
    alice: Person
    morgan_user: User
    morgan: Person
    laptop: CatalogItem


def portal(user: User | None, host: str = HOST) -> Client:
    client = Client(HTTP_HOST=host)
    if user is not None:
        client.force_login(user)
    return client


def member(tenant: Tenant, email: str, role: str) -> tuple[User, Person]:
    user = make_user(email)
    tenant_membership_set(user=user, tenant=tenant, role=role)
    with tenant_context(tenant):
        found = actor_in(tenant, user, role).person
    assert found is not None
    return user, found


@pytest.fixture
def scene(tenant_a: Tenant, tech_a: User, end_user_a: User) -> Scene:
    """Alice (end user) orders a laptop whose only approval step is her manager Morgan (approver)."""
    morgan_user, morgan = member(tenant_a, "morgan@acme.example", "approver")
    with tenant_context(tenant_a):
        tech = actor_in(tenant_a, tech_a)
        alice = actor_in(tenant_a, end_user_a, "end_user").person
        assert alice is not None
        Person.objects.filter(pk=alice.pk).update(manager=morgan)
        alice.refresh_from_db()
        laptop = item(
            tech,
            schema=LAPTOP_SCHEMA,
            fulfilment_group=group("Desk"),
            steps=[StepSpec(order=1, approver_role="requester_manager")],
        )
    return Scene(tenant_a, tech, end_user_a, alice, morgan_user, morgan, laptop)


def order(scene: Scene, **variables: Any) -> ServiceRequest:
    with tenant_context(scene.tenant):
        alice = Actor(user_id=scene.alice_user.pk, person=scene.alice, role="end_user", source="portal")
        return request_submit(
            actor=alice, items=[{"catalog_item": scene.laptop, "variables": variables, "quantity": 1}]
        )


def written(tenant: Tenant) -> tuple[int, int, int, list[str]]:
    """What a refused post must not change: requests, activity entries, comments, approval states."""
    with tenant_context(tenant):
        return (
            ServiceRequest.objects.count(),
            ActivityEntry.objects.count(),
            Comment.objects.count(),
            list(Approval.objects.order_by("id").values_list("state", flat=True)),
        )


def field_error(page: str, name: str) -> str:
    """The error text rendered next to form field ``name`` (``id_<name>_error``), or ''."""
    found = re.search(rf'id="id_{name}_error"[^>]*>(.*?)</div>', page, re.S)
    return found.group(1) if found else ""


def test_ordering_an_item_with_a_conditional_field(scene: Scene) -> None:
    with tenant_context(scene.tenant):
        own = ci("Alice's laptop", owner=scene.alice, number="CI0000001")
        other = ci("Payroll server", owner=scene.morgan, number="CI0000002")
    alice = portal(scene.alice_user)
    catalog = alice.get("/catalog/").content.decode()
    url = f"/catalog/{scene.laptop.pk}/"
    assert "Hardware" in catalog and f'href="{url}"' in catalog
    form = alice.get(url).content.decode()
    # The rules for the browser come from the schema: justification shows (and is required) only for a
    # developer laptop; monitor_size is required once monitor_count is given; reason is always required.
    assert (
        'data-field="var_justification" data-visible-when="[[{&quot;field&quot;: &quot;var_model&quot;'
        in form
    )
    assert (
        'data-field="var_monitor_size" data-required-when="[[{&quot;field&quot;: &quot;var_monitor_count&quot;'
        in form
    )
    assert re.search(r'name="var_reason"[^>]*required', form)
    assert 'src="/static/requests/conditional.js"' in form
    assert 'type="date"' in form and 'name="requested_for"' not in form
    # Pickers: people of the directory; only the CIs Alice may see (her own).
    assert f'<option value="{scene.morgan.pk}">Morgan</option>' in form
    assert f'<option value="{own.pk}">' in form and f'value="{other.pk}"' not in form
    base = {"var_reason": "new starter", "quantity": 1}

    # Condition off (a standard laptop): justification is not required.
    done = alice.post(url, {**base, "var_model": "standard"})
    assert done.status_code == 302 and done["Location"] == "/requests/REQ0000001/"
    before = written(scene.tenant)

    # Condition on: the missing justification is refused next to its field, and nothing is written.
    refused = alice.post(url, {**base, "var_model": "developer", "var_monitor_count": "2"})
    page = refused.content.decode()
    assert refused.status_code == 422
    assert field_error(page, "var_justification") == "required"
    assert field_error(page, "var_monitor_size") == "required when monitor_count is given"
    assert field_error(page, "var_reason") == ""
    assert 'value="new starter"' in page  # the answers given are kept
    assert written(scene.tenant) == before

    # Then success: the request waits for Morgan's approval, with the answers as given.
    done = alice.post(
        url,
        {
            **base,
            "var_model": "developer",
            "var_justification": "builds",
            "var_monitor_count": "2",
            "var_monitor_size": "27",
        },
    )
    assert done.status_code == 302 and done["Location"] == "/requests/REQ0000002/"
    with tenant_context(scene.tenant):
        request = ServiceRequest.objects.get(number="REQ0000002")
        assert (request.requested_for, request.opened_by, request.state) == (
            scene.alice,
            scene.alice,
            "pending_approval",
        )
        assert request.items.get().variables == {
            "reason": "new starter",
            "model": "developer",
            "justification": "builds",
            "monitor_count": 2,
            "monitor_size": "27",
        }
        assert list(Approval.objects.filter(request=request).values_list("approver", "state")) == [
            (scene.morgan.pk, "pending")
        ]
    detail = alice.get("/requests/REQ0000002/").content.decode()
    assert (
        "Pending approval" in detail
        and "Justification" in detail
        and "builds" in detail
        and "Morgan" in detail
    )


def test_inactive_and_unknown_items_are_not_orderable_on_the_portal(scene: Scene) -> None:
    client_admin_user, _ = member(scene.tenant, "cleo@acme.example", "client_admin")
    with tenant_context(scene.tenant):
        CatalogItem.objects.filter(pk=scene.laptop.pk).update(active=False)
    for user in (scene.alice_user, client_admin_user):
        client = portal(user)
        assert client.get(f"/catalog/{scene.laptop.pk}/").status_code == 404
        assert (
            client.post(f"/catalog/{scene.laptop.pk}/", {"var_reason": "x", "quantity": 1}).status_code == 404
        )
        assert "Laptop" not in client.get("/catalog/").content.decode()
    assert written(scene.tenant)[0] == 0


def test_approver_approves_and_rejects_on_the_portal(scene: Scene) -> None:
    first = order(scene, reason="new starter", model="standard")
    second = order(scene, reason="spare one", model="standard")
    with tenant_context(scene.tenant):
        a1, a2 = (Approval.objects.get(request=r) for r in (first, second))
    morgan = portal(scene.morgan_user)
    page = morgan.get("/approvals/").content.decode()
    assert "REQ0000001" in page and "REQ0000002" in page and "spare one" in page and "Reason" in page
    assert f'action="/approvals/{a1.pk}/"' in page

    approved = morgan.post(f"/approvals/{a1.pk}/", {f"{a1.pk}-decision": "approve", f"{a1.pk}-comment": "ok"})
    assert approved.status_code == 302 and approved["Location"] == "/approvals/"

    before = written(scene.tenant)
    refused = morgan.post(f"/approvals/{a2.pk}/", {f"{a2.pk}-decision": "reject", f"{a2.pk}-comment": " "})
    assert refused.status_code == 422
    assert field_error(refused.content.decode(), f"{a2.pk}-comment") == "say why"
    assert written(scene.tenant) == before

    rejected = morgan.post(
        f"/approvals/{a2.pk}/", {f"{a2.pk}-decision": "reject", f"{a2.pk}-comment": "one is enough"}
    )
    assert rejected.status_code == 302
    with tenant_context(scene.tenant):
        a1.refresh_from_db()
        a2.refresh_from_db()
        assert (a1.state, a1.comment, a1.decided_by) == ("approved", "ok", scene.morgan)
        assert (a2.state, a2.comment, a2.decided_by) == ("rejected", "one is enough", scene.morgan)
        assert ServiceRequest.objects.get(pk=first.pk).state == "in_progress"
        assert ServiceRequest.objects.get(pk=second.pk).state == "rejected"
    page = morgan.get("/approvals/").content.decode()
    waiting, decided = page.split("<h2>Decided</h2>")
    assert "Nothing is waiting for you." in waiting
    assert "REQ0000001" in decided and "Approved" in decided and "one is enough" in decided
    # Deciding twice is refused as a conflict, nothing written.
    before = written(scene.tenant)
    again = morgan.post(f"/approvals/{a1.pk}/", {f"{a1.pk}-decision": "reject", f"{a1.pk}-comment": "no"})
    assert again.status_code == 409 and written(scene.tenant) == before
    # Alice sees the outcome and the reason on her request.
    alice_page = portal(scene.alice_user).get("/requests/REQ0000002/").content.decode()
    assert "Rejected" in alice_page and "one is enough" in alice_page


def test_a_delegated_approval_waits_for_the_delegate(scene: Scene) -> None:
    dana_user, dana = member(scene.tenant, "dana@acme.example", "end_user")
    request = order(scene, reason="new starter", model="standard")
    with tenant_context(scene.tenant):
        approval = Approval.objects.get(request=request)
        approval_delegate(actor=scene.tech, approval=approval, delegate_to=dana)
    dana_client = portal(dana_user)
    assert "REQ0000001" in dana_client.get("/approvals/").content.decode()
    assert (
        f'action="/approvals/{approval.pk}/"'
        not in portal(scene.morgan_user).get("/approvals/").content.decode()
    )
    done = dana_client.post(f"/approvals/{approval.pk}/", {f"{approval.pk}-decision": "approve"})
    assert done.status_code == 302
    with tenant_context(scene.tenant):
        approval.refresh_from_db()
        assert (approval.state, approval.decided_by) == ("approved", dana)


def test_someone_else_cannot_decide_an_approval(scene: Scene, tenant_b: Tenant, end_user_b: User) -> None:
    bob_user, _ = member(scene.tenant, "bob@acme.example", "end_user")
    request = order(scene, reason="new starter", model="standard")
    with tenant_context(scene.tenant):
        approval = Approval.objects.get(request=request)
    before = written(scene.tenant)
    post = {f"{approval.pk}-decision": "approve", f"{approval.pk}-comment": "sure"}
    # Bob (nothing to do with it) and Alice (the requester, who sees the request) both get 404.
    for user in (bob_user, scene.alice_user):
        client = portal(user)
        assert client.post(f"/approvals/{approval.pk}/", post).status_code == 404
        assert "REQ0000001" not in client.get("/approvals/").content.decode()
    assert portal(bob_user).get("/requests/REQ0000001/").status_code == 404
    # An id that never existed answers the same.
    assert portal(bob_user).post(f"/approvals/{Approval().pk}/", post).status_code == 404
    assert written(scene.tenant) == before


def test_end_user_of_b_gets_nothing_of_a(scene: Scene, tenant_b: Tenant, end_user_b: User) -> None:
    request = order(scene, reason="secret project", model="standard")
    with tenant_context(scene.tenant):
        approval = Approval.objects.get(request=request)
        incident_create(actor=scene.tech, short_description="payroll down", caller=scene.alice)
    before = written(scene.tenant)
    pages = ["/catalog/", f"/catalog/{scene.laptop.pk}/", "/requests/", "/requests/REQ0000001/",
             "/incidents/INC0000001/", "/approvals/"]  # fmt: skip
    # Signed in at A's host without a role there: the "no access" page, none of A's records.
    bob = portal(end_user_b)
    for path in pages:
        response = bob.get(path)
        body = response.content.decode()
        assert response.status_code == 403, path
        assert "secret project" not in body and "payroll down" not in body and "Laptop" not in body
    assert bob.post(f"/approvals/{approval.pk}/", {f"{approval.pk}-decision": "approve"}).status_code == 403
    # Signed in at B's own host, then the cookie sent to A's host: signed out there, sent to sign in.
    carried = portal(end_user_b, host="globex.localhost")
    assert carried.get("/requests/").status_code == 200
    carried.defaults["HTTP_HOST"] = HOST
    for path in pages:
        response = carried.get(path)
        assert response.status_code == 302 and response["Location"].startswith("/accounts/login/"), path
    # And B's own portal lists nothing of A.
    own = portal(end_user_b, host="globex.localhost").get("/requests/").content.decode()
    assert "REQ0000001" not in own and "INC0000001" not in own
    assert written(scene.tenant) == before


def test_request_detail_shows_the_public_timeline_and_never_work_notes(scene: Scene) -> None:
    request = order(scene, reason="new starter", model="standard")
    with tenant_context(scene.tenant):
        request_comment(actor=scene.tech, request=request, body="internal: budget code 4711", work_note=True)
        request_comment(actor=scene.tech, request=request, body="We ordered it for you.")
        morgan = Actor(user_id=scene.morgan_user.pk, person=scene.morgan, role="approver")
        approval_decide(actor=morgan, approval=Approval.objects.get(request=request), decision="approve")
    alice = portal(scene.alice_user)
    page = alice.get("/requests/REQ0000001/").content.decode()
    assert "We ordered it for you." in page
    assert "State changed from Pending approval to <strong>Approved</strong>" in page
    assert "In progress" in page
    for hidden in ("budget code 4711", "SCTASK", "Desk", "work note", "work_note"):
        assert hidden not in page, hidden
    replied = alice.post("/requests/REQ0000001/", {"body": "Thanks!"})
    assert replied.status_code == 302
    empty = alice.post("/requests/REQ0000001/", {"body": "  "})
    assert (
        empty.status_code == 422 and field_error(empty.content.decode(), "body") == "This field is required."
    )
    with tenant_context(scene.tenant):
        assert list(Comment.objects.filter(record_id=request.pk).values_list("body", "is_work_note")) == [
            ("internal: budget code 4711", True),
            ("We ordered it for you.", False),
            ("Thanks!", False),
        ]
    assert "Thanks!" in alice.get("/requests/REQ0000001/").content.decode()


def test_incident_detail_has_timeline_and_reply_box_without_work_notes(scene: Scene) -> None:
    from modules.incidents.services import incident_comment, incident_transition

    with tenant_context(scene.tenant):
        incident = incident_create(actor=scene.tech, short_description="printer jam", caller=scene.alice)
        incident_comment(actor=scene.tech, incident=incident, body="internal: toner fraud", work_note=True)
        incident_transition(
            actor=scene.tech,
            incident=incident,
            action="resolve",
            resolution_code="solved_permanently",
            resolution_notes="new drum",
        )
    alice = portal(scene.alice_user)
    page = alice.get(f"/incidents/{incident.number}/").content.decode()
    assert "Timeline" in page and "<strong>Resolved</strong>" in page and 'name="body"' in page
    assert "toner fraud" not in page and "Not fixed: reopen" in page
    assert alice.post(f"/incidents/{incident.number}/", {"body": ""}).status_code == 422


def test_my_list_and_the_organisation_tab(scene: Scene) -> None:
    cleo_user, cleo = member(scene.tenant, "cleo@acme.example", "client_admin")
    order(scene, reason="new starter", model="standard")
    with tenant_context(scene.tenant):
        incident_create(actor=scene.tech, short_description="alice's printer", caller=scene.alice)
        incident_create(actor=scene.tech, short_description="cleo's phone", caller=cleo)
    alice = portal(scene.alice_user)
    mine = alice.get("/requests/").content.decode()
    assert "REQ0000001" in mine and "alice&#x27;s printer" in mine and "cleo&#x27;s phone" not in mine
    assert "My organisation" not in mine
    # An end user asking for the organisation's list gets their own.
    assert "cleo&#x27;s phone" not in alice.get("/requests/?scope=organisation").content.decode()
    assert portal(scene.alice_user).get("/incidents/INC0000002/").status_code == 404
    cleo_client = portal(cleo_user)
    cleo_mine = cleo_client.get("/requests/").content.decode()
    assert (
        "cleo&#x27;s phone" in cleo_mine and "REQ0000001" not in cleo_mine and "My organisation" in cleo_mine
    )
    organisation = cleo_client.get("/requests/?scope=organisation").content.decode()
    assert (
        "REQ0000001" in organisation
        and "alice&#x27;s printer" in organisation
        and "cleo&#x27;s phone" in organisation
    )
    assert cleo_client.get("/requests/REQ0000001/").status_code == 200
    assert cleo_client.get("/incidents/INC0000001/").status_code == 200


def _queries(client: Client, path: str) -> int:
    client.get(path)  # the first request of a session binds it to the host (a write); count the next
    with CaptureQueriesContext(connection) as captured:
        response = client.get(path)
    assert response.status_code == 200
    # Schema switches (``SET search_path``) depend on where the previous request left the connection,
    # not on the page: count the reads.
    return sum(1 for q in captured.captured_queries if not q["sql"].startswith("SET search_path"))


def test_query_counts_do_not_grow_with_rows(scene: Scene) -> None:
    _, dana = member(scene.tenant, "dana@acme.example", "end_user")

    def add(count: int) -> None:
        for index in range(count):
            pending = order(scene, reason=f"order {index}", model="standard", deliver_to=str(dana.pk))
            decided = order(scene, reason=f"other {index}", model="standard", deliver_to=str(dana.pk))
            with tenant_context(scene.tenant):
                incident_create(actor=scene.tech, short_description=f"issue {index}", caller=scene.alice)
                morgan = Actor(user_id=scene.morgan_user.pk, person=scene.morgan, role="approver")
                approval_decide(
                    actor=morgan, approval=Approval.objects.get(request=decided), decision="approve"
                )
                assert Approval.objects.filter(request=pending, state="pending").exists()

    alice, morgan = portal(scene.alice_user), portal(scene.morgan_user)
    add(1)
    one = (_queries(alice, "/requests/"), _queries(morgan, "/approvals/"))
    add(29)
    page = morgan.get("/approvals/").content.decode()
    assert page.count('<section class="card"') == 30 and page.count("Dana") == 60
    assert alice.get("/requests/").content.decode().count("<tr>") == 1 + 25  # header and a full page
    thirty = (_queries(alice, "/requests/"), _queries(morgan, "/approvals/"))
    assert one == thirty
    # 30 incidents and 60 requests: four pages; htmx paging gets the table only.
    partial = alice.get("/requests/?scope=mine&page=4", HTTP_HX_REQUEST="true").content.decode()
    assert "<html" not in partial and partial.count("<tr>") == 1 + 15 and "Page 4" in partial
    assert "page=3" in partial and "page=5" not in partial  # the last page: back, no onwards


def test_form_rules_and_field_order_from_the_schema() -> None:
    schema = {
        "type": "object",
        "properties": {
            "notes": {"type": "string"},
            "kind": {"type": "string", "enum": ["a", "b"], "x-order": 1},
            "why": {"type": "string", "x-order": 2},
            "count": {"type": "integer"},
            "size": {"type": "string"},
            "odd": {"type": "string"},
        },
        "required": ["kind"],
        "allOf": [
            {
                "if": {"properties": {"kind": {"const": "b"}}, "required": ["kind"]},
                "then": {"required": ["why"]},
            },
            {"if": {"properties": {"count": {"minimum": 3}}}, "then": {"required": ["odd"]}},
        ],
        "dependentRequired": {"count": ["size"]},
    }
    assert [name for name, _ in schema_properties(schema)] == ["kind", "why", "notes", "count", "size", "odd"]
    rules = schema_conditions(schema)
    assert rules["kind"] == {"always_required": True, "required_when": [], "visible_when": []}
    why = [[{"field": "var_kind", "in": ["b"]}]]
    assert rules["why"] == {"always_required": False, "required_when": why, "visible_when": why}
    assert rules["size"] == {
        "always_required": False,
        "required_when": [[{"field": "var_count", "filled": True}]],
        "visible_when": [],
    }
    # A condition the browser cannot evaluate leaves the field shown and unmarked: the server decides.
    assert rules["odd"] == {"always_required": False, "required_when": [], "visible_when": []}
