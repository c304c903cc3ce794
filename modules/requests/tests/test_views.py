"""Console pages for service requests and the catalog, through the test client."""

from __future__ import annotations

import json
import re
from collections.abc import Callable

from django.test import Client
from django_tenants.utils import tenant_context

from conftest import actor_in, make_user
from controlplane.accounts.models import User
from controlplane.accounts.services import tenant_membership_set
from modules.people.models import Person
from modules.records.models import ActivityEntry
from modules.requests.models import Approval, CatalogItem, FulfilmentTask, ServiceRequest
from modules.requests.services import StepSpec
from tenants.models import Tenant

from .factories import LAPTOP_SCHEMA, category, group, item


def test_catalog_admin_creates_an_item_with_a_schema(
    client_for: Callable[..., Client], tenant_a: Tenant, tech_a: User
) -> None:
    with tenant_context(tenant_a):
        hardware = category(actor_in(tenant_a, tech_a))
        desk = group("Desk")
    console = client_for(tech_a)
    page = console.get("/t/acme/requests/catalog/items/new/")
    assert page.status_code == 200 and "Form (JSON Schema, Draft 2020-12)" in page.content.decode()
    fields = {
        "name": "Laptop",
        "category": str(hardware.pk),
        "fulfilment_group": str(desk.pk),
        "expected_delivery_hours": 48,
        "active": "on",
        "approval_required": "on",
        "approval_steps": json.dumps([{"order": 1, "approver_role": "requester_manager"}]),
    }
    bad = console.post("/t/acme/requests/catalog/items/new/", {**fields, "form_schema": '{"type": "strang"}'})
    assert bad.status_code == 422 and 'id="id_form_schema_error"' in bad.content.decode()  # by the field
    created = console.post(
        "/t/acme/requests/catalog/items/new/", {**fields, "form_schema": json.dumps(LAPTOP_SCHEMA)}
    )
    assert created.status_code == 302 and created["Location"] == "/t/acme/requests/catalog/"
    with tenant_context(tenant_a):
        laptop = CatalogItem.objects.get()
        assert (laptop.form_schema, laptop.fulfilment_group, laptop.approval_required) == (
            LAPTOP_SCHEMA,
            desk,
            True,
        )
        assert [(s.order, s.approver_role) for s in laptop.approval_steps.all()] == [(1, "requester_manager")]
    listing = console.get("/t/acme/requests/catalog/")
    assert listing.status_code == 200 and "Laptop" in listing.content.decode()
    edit = console.get(f"/t/acme/requests/catalog/items/{laptop.pk}/edit/")
    assert edit.status_code == 200 and "requester_manager" in edit.content.decode()


def test_end_user_cannot_open_the_catalog_admin(
    client_for: Callable[..., Client], tenant_a: Tenant, end_user_a: User
) -> None:
    assert client_for(end_user_a).get("/t/acme/requests/catalog/items/new/").status_code == 403


def test_technician_orders_for_someone_from_the_schema_form(
    client_for: Callable[..., Client], tenant_a: Tenant, tech_a: User
) -> None:
    with tenant_context(tenant_a):
        tech = actor_in(tenant_a, tech_a)
        laptop = item(tech, schema=LAPTOP_SCHEMA, fulfilment_group=group("Desk"))
        bob = Person.objects.create(display_name="Bob")
    console = client_for(tech_a)
    url = f"/t/acme/requests/catalog/items/{laptop.pk}/order/"
    form = console.get(url).content.decode()
    assert 'name="var_reason"' in form and 'type="date"' in form and 'name="requested_for"' in form
    assert '<option value="developer">developer</option>' in form
    # The same conditional form as the portal's: justification is required only for the developer model.
    assert "data-conditional-form" in form and "requests/conditional.js" in form
    assert re.search(r'data-field="var_justification"[^>]*data-required-when=', form)
    refused = console.post(url, {"requested_for": str(bob.pk), "var_model": "developer", "quantity": 1})
    page = refused.content.decode()
    assert refused.status_code == 422 and page.count("required") >= 2
    with tenant_context(tenant_a):
        assert ServiceRequest.objects.count() == 0
    done = console.post(
        url,
        {
            "requested_for": str(bob.pk),
            "var_reason": "new starter",
            "var_model": "developer",
            "var_justification": "builds",
            "var_needed_by": "2026-03-01",
            "var_ram_gb": "32",
            "quantity": 1,
        },
    )
    assert done.status_code == 302 and done["Location"] == "/t/acme/requests/REQ0000001/"
    with tenant_context(tenant_a):
        request = ServiceRequest.objects.get()
        assert (request.requested_for, request.state) == (bob, "in_progress")
        assert request.items.get().variables == {
            "reason": "new starter",
            "model": "developer",
            "ram_gb": 32,
            "needed_by": "2026-03-01",
            "justification": "builds",
        }
    detail = console.get("/t/acme/requests/REQ0000001/").content.decode()
    assert "RITM0000001" in detail and "SCTASK0000001" in detail and "new starter" in detail
    with tenant_context(tenant_a):
        task = FulfilmentTask.objects.get()
    closed = console.post(f"/t/acme/requests/tasks/{task.pk}/", {"action": "complete"})
    assert closed.status_code == 302
    assert "Fulfilled" in console.get("/t/acme/requests/REQ0000001/").content.decode()


def test_approver_decides_on_the_request_page(
    client_for: Callable[..., Client], tenant_a: Tenant, tech_a: User, end_user_a: User
) -> None:
    morgan_user = make_user("morgan@acme.example")
    tenant_membership_set(user=morgan_user, tenant=tenant_a, role="approver")
    with tenant_context(tenant_a):
        tech = actor_in(tenant_a, tech_a)
        morgan = actor_in(tenant_a, morgan_user, "approver").person
        alice = actor_in(tenant_a, end_user_a, "end_user").person
        Person.objects.filter(pk=alice.pk).update(manager=morgan)  # type: ignore[union-attr]
        laptop = item(tech, steps=[StepSpec(order=1, approver_role="requester_manager")])
    alice_console, morgan_console, tech_console = (
        client_for(end_user_a),
        client_for(morgan_user),
        client_for(tech_a),
    )
    url = f"/t/acme/requests/catalog/items/{laptop.pk}/order/"
    assert "requested_for" not in alice_console.get(url).content.decode()
    assert alice_console.post(url, {"quantity": 1}).status_code == 302
    with tenant_context(tenant_a):
        approval = Approval.objects.get()
    listing = morgan_console.get("/t/acme/requests/").content.decode()
    assert "Waiting for my approval" in listing and "REQ0000001" in listing
    detail = morgan_console.get("/t/acme/requests/REQ0000001/").content.decode()
    assert f"/t/acme/requests/approvals/{approval.pk}/decide/" in detail
    alice_page = alice_console.get("/t/acme/requests/REQ0000001/").content.decode()
    assert f"/approvals/{approval.pk}/decide/" not in alice_page
    with tenant_context(tenant_a):
        before = ActivityEntry.objects.count()
    denied = alice_console.post(f"/t/acme/requests/approvals/{approval.pk}/decide/", {"decision": "approve"})
    assert denied.status_code == 403
    with tenant_context(tenant_a):
        assert ActivityEntry.objects.count() == before
    resent = tech_console.post(f"/t/acme/requests/approvals/{approval.pk}/resend/")
    assert resent.status_code == 302
    decided = morgan_console.post(
        f"/t/acme/requests/approvals/{approval.pk}/decide/", {"decision": "approve", "comment": "go"}
    )
    assert decided.status_code == 302 and decided["Location"] == "/t/acme/requests/REQ0000001/"
    with tenant_context(tenant_a):
        approval.refresh_from_db()
        assert (approval.state, approval.reminder_count) == ("approved", 1)
        assert ServiceRequest.objects.get().state == "in_progress"
    history = tech_console.get("/t/acme/requests/REQ0000001/").content.decode()
    assert "Approval resent" in history and "Approval approved" in history
    assert client_for(tech_a).get("/t/acme/requests/REQ0000999/").status_code == 404
