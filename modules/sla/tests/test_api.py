"""SLA API: admins write calendars, contracts and policies (422 naming the field, nothing written on bad
input or denial); technicians read; a record's timers for technicians and for the end user whose record
it is, 404 for anyone else's."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.test import Client
from django_tenants.utils import tenant_context

from conftest import actor_in, make_user
from controlplane.accounts.models import User
from controlplane.accounts.services import provider_membership_set, tenant_grant
from controlplane.providers.models import Provider
from modules.incidents.services import incident_create
from modules.sla.models import BusinessCalendar, Contract, EscalationLevel, SLAPolicy
from tenants.models import Tenant

BASE = "/api/v1/t/acme/sla"
HOURS = [{"weekday": d, "start": "09:00", "end": "17:30"} for d in range(5)]


@pytest.fixture
def admin_a(provider: Provider, tenant_a: Tenant) -> User:
    user = make_user("admin.a@northwind.example")
    tenant_grant(
        membership=provider_membership_set(user=user, provider=provider, role="admin"), tenant=tenant_a
    )
    return user


def counts(tenant: Tenant) -> tuple[int, ...]:
    with tenant_context(tenant):
        return (
            BusinessCalendar.objects.count(),
            Contract.objects.count(),
            SLAPolicy.objects.count(),
            EscalationLevel.objects.count(),
        )


def setup_contract(client: Client) -> dict[str, Any]:
    calendar = client.post(
        f"{BASE}/calendars",
        {
            "name": "London office",
            "holiday_country": "GB",
            "holiday_subdivision": "ENG",
            "working_hours": [*HOURS, {"weekday": 5, "start": "10:00", "end": "24:00"}],
            "closed_days": [{"date": "2025-08-01", "name": "Office move"}],
        },
        content_type="application/json",
    )
    assert calendar.status_code == 201, calendar.content
    contract = client.post(
        f"{BASE}/contracts",
        {"name": "Managed service", "starts_on": "2024-01-01", "calendar_id": calendar.json()["id"]},
        content_type="application/json",
    )
    assert contract.status_code == 201, contract.content
    return {"calendar": calendar.json(), "contract": contract.json()}


def test_admin_creates_a_calendar_in_the_tenant_s_time_zone(
    tenant_a: Tenant, admin_a: User, api_for: Callable[[User], Client]
) -> None:
    made = setup_contract(api_for(admin_a))
    assert made["calendar"]["time_zone"] == "Europe/London"
    assert made["calendar"]["working_hours"][-1] == {"weekday": 5, "start": "10:00", "end": "24:00"}
    assert made["calendar"]["closed_days"] == [{"date": "2025-08-01", "name": "Office move"}]
    assert made["contract"]["active"] is True


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"time_zone": "Europe/Atlantis"}, "time_zone"),
        ({"holiday_country": "XX"}, "holiday_country"),
        ({"holiday_country": "GB", "holiday_subdivision": "XYZ"}, "holiday_subdivision"),
        (
            {
                "working_hours": [
                    {"weekday": 0, "start": "08:00", "end": "12:00"},
                    {"weekday": 0, "start": "11:00", "end": "15:00"},
                ]
            },
            "working_hours",
        ),
        ({"working_hours": [{"weekday": 0, "start": "8am", "end": "12:00"}]}, "working_hours[0].start"),
    ],
)
def test_bad_calendars_are_422_naming_the_field_and_write_nothing(
    tenant_a: Tenant, admin_a: User, api_for: Callable[[User], Client], change: dict[str, Any], field: str
) -> None:
    before = counts(tenant_a)
    body = {"name": "Bad", "working_hours": HOURS, **change}
    response = api_for(admin_a).post(f"{BASE}/calendars", body, content_type="application/json")
    assert response.status_code == 422
    assert response["Content-Type"] == "application/problem+json"
    assert [e["field"] for e in response.json()["errors"]] == [field]
    assert counts(tenant_a) == before


def test_policy_gets_default_levels_and_technicians_may_read_but_not_write(
    tenant_a: Tenant, admin_a: User, tech_a: User, api_for: Callable[[User], Client]
) -> None:
    admin = api_for(admin_a)
    made = setup_contract(admin)
    created = admin.post(
        f"{BASE}/policies",
        {
            "contract_id": made["contract"]["id"],
            "name": "P1",
            "record_type": "incident",
            "priorities": [1],
            "response_target_minutes": 15,
            "resolution_target_minutes": 240,
        },
        content_type="application/json",
    )
    assert created.status_code == 201, created.content
    levels = [(lv["kind"], lv["percent"]) for lv in created.json()["levels"]]
    assert levels == [(k, p) for k in ("resolution", "response") for p in (75, 90, 100)]

    tech = api_for(tech_a)
    assert tech.get(f"{BASE}/policies/{created.json()['id']}").json()["name"] == "P1"
    before = counts(tenant_a)
    denied = tech.post(
        f"{BASE}/calendars", {"name": "Mine", "working_hours": HOURS}, content_type="application/json"
    )
    assert denied.status_code == 403
    denied = tech.patch(
        f"{BASE}/policies/{created.json()['id']}",
        {"resolution_target_minutes": 1},
        content_type="application/json",
    )
    assert denied.status_code == 403
    assert counts(tenant_a) == before

    bad = admin.patch(
        f"{BASE}/policies/{created.json()['id']}",
        {"levels": [{"kind": "resolution", "percent": 50, "actions": {"reassign_group": "nope"}}]},
        content_type="application/json",
    )
    assert bad.status_code == 422
    assert [e["field"] for e in bad.json()["errors"]] == ["levels[0].actions.reassign_group"]
    assert counts(tenant_a) == before


def test_timers_for_technicians_and_for_the_record_s_own_end_user_only(
    tenant_a: Tenant,
    admin_a: User,
    tech_a: User,
    end_user_a: User,
    api_for: Callable[[User], Client],
) -> None:
    admin = api_for(admin_a)
    made = setup_contract(admin)
    admin.post(
        f"{BASE}/policies",
        {
            "contract_id": made["contract"]["id"],
            "name": "All incidents",
            "record_type": "incident",
            "resolution_target_minutes": 480,
            "business_time": False,
        },
        content_type="application/json",
    )
    other = make_user("carol@acme.example")
    with tenant_context(tenant_a):
        own = incident_create(actor=actor_in(tenant_a, end_user_a, "end_user"), short_description="mine")
        theirs = incident_create(actor=actor_in(tenant_a, other, "end_user"), short_description="not mine")
    timers = api_for(tech_a).get(f"{BASE}/timers", {"record_id": str(own.pk)})
    assert timers.status_code == 200
    [timer] = timers.json()
    assert (timer["kind"], timer["stage"], timer["target_seconds"], timer["policy_name"]) == (
        "resolution",
        "running",
        28800,
        "All incidents",
    )
    assert timer["elapsed_seconds"] + timer["remaining_seconds"] == 28800
    mine = api_for(end_user_a).get(f"{BASE}/timers", {"record_id": str(own.pk)})
    assert [t["kind"] for t in mine.json()] == ["resolution"]
    refused = api_for(end_user_a).get(f"{BASE}/timers", {"record_id": str(theirs.pk)})
    assert refused.status_code == 404
    assert api_for(end_user_a).get(f"{BASE}/calendars").status_code == 403
