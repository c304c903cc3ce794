"""A person's line manager: set through the API by technicians and client admins, never in a circle."""

from __future__ import annotations

from collections.abc import Callable

from django.test import Client
from django_tenants.utils import tenant_context

from controlplane.accounts.models import User
from modules.people.models import Person
from modules.records.models import ActivityEntry
from tenants.models import Tenant

BASE = "/api/v1/t/acme/people"


def test_set_and_clear_a_manager_with_history(
    tenant_a: Tenant, tech_a: User, api_for: Callable[[User], Client]
) -> None:
    with tenant_context(tenant_a):
        ann, bob = Person.objects.create(display_name="Ann"), Person.objects.create(display_name="Bob")
    api = api_for(tech_a)
    set_ = api.patch(f"{BASE}/{ann.pk}", {"manager_id": str(bob.pk)}, content_type="application/json")
    assert set_.status_code == 200 and set_.json()["manager_id"] == str(bob.pk)
    cleared = api.patch(f"{BASE}/{ann.pk}", {"manager_id": None}, content_type="application/json")
    assert cleared.status_code == 200 and cleared.json()["manager_id"] is None
    with tenant_context(tenant_a):
        entries = ActivityEntry.objects.filter(record_id=ann.pk, verb="person.manager_set")
        assert [e.changes["manager"][1] for e in entries] == [{"id": str(bob.pk), "name": "Bob"}, None]


def test_refusals_name_the_field_and_write_nothing(
    tenant_a: Tenant, tech_a: User, end_user_a: User, api_for: Callable[[User], Client]
) -> None:
    with tenant_context(tenant_a):
        ann, bob = Person.objects.create(display_name="Ann"), Person.objects.create(display_name="Bob")
        bob.manager = ann
        bob.save()
    api = api_for(tech_a)

    def patch(person: Person, manager: object) -> dict[str, object]:
        response = api.patch(f"{BASE}/{person.pk}", {"manager_id": manager}, content_type="application/json")
        assert response.status_code == 422, response.content
        body: dict[str, object] = response.json()
        return body

    assert patch(ann, str(ann.pk))["errors"] == [
        {"field": "manager_id", "message": "a person cannot be their own manager"}
    ]
    assert patch(ann, str(bob.pk))["errors"] == [
        {"field": "manager_id", "message": "this would make a circle of managers"}
    ]
    assert patch(ann, "01a20000-0000-7000-8000-000000000000")["errors"] == [
        {"field": "manager_id", "message": "not found"}
    ]
    denied = api_for(end_user_a).patch(
        f"{BASE}/{ann.pk}", {"manager_id": str(bob.pk)}, content_type="application/json"
    )
    assert denied.status_code == 403  # end users see only themselves in the directory
    with tenant_context(tenant_a):
        ann.refresh_from_db()
        assert ann.manager_id is None
        assert not ActivityEntry.objects.filter(verb="person.manager_set").exists()
