"""Console pages for SLA calendars, contracts and policies: admins create and change them through the
services (the same rows the API writes), domain errors show next to their field and write nothing,
technicians read but cannot change, end users are refused, and another tenant's ids are 404."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.test import Client
from django_tenants.utils import tenant_context

from conftest import make_user
from controlplane.accounts.models import User
from controlplane.accounts.services import provider_membership_set, tenant_grant, tenant_membership_set
from controlplane.providers.models import Provider
from modules.people.models import Group, Person
from modules.records.models import ActivityEntry, uuid7
from modules.sla.models import BusinessCalendar, ClosedDay, Contract, EscalationLevel, SLAPolicy, WorkingHours
from tenants.models import Tenant

from .factories import contract, london_calendar, policy

ClientFor = Callable[..., Client]
BASE = "/t/acme/sla/"
API = "/api/v1/t/acme/sla"


@pytest.fixture
def admin_a(provider: Provider, tenant_a: Tenant) -> User:
    user = make_user("admin.a@northwind.example")
    tenant_grant(
        membership=provider_membership_set(user=user, provider=provider, role="admin"), tenant=tenant_a
    )
    return user


@pytest.fixture
def client_admin_a(tenant_a: Tenant) -> User:
    user = make_user("it.lead@acme.example")
    tenant_membership_set(user=user, tenant=tenant_a, role="client_admin")
    return user


def writes(tenant: Tenant) -> tuple[int, ...]:
    with tenant_context(tenant):
        return (
            ActivityEntry.objects.count(),
            BusinessCalendar.objects.count(),
            WorkingHours.objects.count(),
            ClosedDay.objects.count(),
            Contract.objects.count(),
            SLAPolicy.objects.count(),
            EscalationLevel.objects.count(),
        )


def week(**days: str) -> dict[str, str]:
    """The calendar form's seven working-hours inputs (``mon="09:00-17:00"``, missing days closed)."""
    names = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
    return {f"working_hours_{i}": days.get(name, "") for i, name in enumerate(names)}


def without(data: dict[str, Any], *keys: str) -> dict[str, Any]:
    return {k: v for k, v in data.items() if k not in keys}


OFFICE = week(
    mon="09:00-12:30, 13:30-17:30",
    tue="09:00-12:30, 13:30-17:30",
    wed="09:00-17:30",
    thu="09:00-17:30",
    fri="09:00-16:00",
    sat="22:00-24:00",
)
OFFICE_API = [
    {"weekday": 0, "start": "09:00", "end": "12:30"},
    {"weekday": 0, "start": "13:30", "end": "17:30"},
    {"weekday": 1, "start": "09:00", "end": "12:30"},
    {"weekday": 1, "start": "13:30", "end": "17:30"},
    {"weekday": 2, "start": "09:00", "end": "17:30"},
    {"weekday": 3, "start": "09:00", "end": "17:30"},
    {"weekday": 4, "start": "09:00", "end": "16:00"},
    {"weekday": 5, "start": "22:00", "end": "24:00"},
]


def test_admin_creates_and_edits_a_calendar_as_the_api_would(
    client_for: ClientFor, api_for: Callable[[User], Client], tenant_a: Tenant, admin_a: User
) -> None:
    console, api = client_for(admin_a), api_for(admin_a)
    form = console.get(f"{BASE}calendars/new/").content.decode()
    assert '<option value="Europe/London" selected>Europe/London</option>' in form  # the tenant's zone
    assert '<option value="GB">GB · United Kingdom</option>' in form
    assert 'hx-get="/t/acme/sla/calendars/subdivisions/"' in form
    assert 'name="working_hours_6"' in form
    options = console.get(f"{BASE}calendars/subdivisions/?holiday_country=GB").content.decode()
    assert options == (
        '<datalist id="subdivisions"><option value="ENG"><option value="NIR">'
        '<option value="SCT"><option value="WLS"></datalist>'
    )
    fields = {"name": "London office", "time_zone": "Europe/London", "holiday_country": "GB"}
    created = console.post(f"{BASE}calendars/new/", {**fields, "holiday_subdivision": "ENG", **OFFICE})
    assert created.status_code == 302
    calendar_id = created["Location"].removeprefix(f"{BASE}calendars/").strip("/")
    twin = api.post(
        f"{API}/calendars",
        {**fields, "name": "API office", "holiday_subdivision": "ENG", "working_hours": OFFICE_API},
        content_type="application/json",
    )
    assert twin.status_code == 201
    page_made = api.get(f"{API}/calendars/{calendar_id}").json()
    assert without(page_made, "id", "name") == without(twin.json(), "id", "name")
    assert page_made["working_hours"] == OFFICE_API and page_made["closed_days"] == []
    shown = console.get(created["Location"]).content.decode()
    assert 'value="09:00-12:30, 13:30-17:30"' in shown and 'value="22:00-24:00"' in shown
    assert '<option value="ENG">' in shown  # the subdivisions of the country, for the input's list

    # Edit: zone, holidays and hours; then a closed day added and removed, on the page and by the API.
    changes = {"name": "Scotland office", "time_zone": "Europe/Dublin", "holiday_country": "GB"}
    edited = console.post(
        created["Location"], {**changes, "holiday_subdivision": "SCT", **week(mon="08:00-16:00")}
    )
    assert edited.status_code == 302 and edited["Location"] == created["Location"]
    added = console.post(f"{created['Location']}closed-days/", {"date": "2025-12-29", "name": "Office shut"})
    assert added.status_code == 302
    patch = {
        **changes,
        "name": "API Scotland",
        "holiday_subdivision": "SCT",
        "working_hours": [{"weekday": 0, "start": "08:00", "end": "16:00"}],
        "closed_days": [{"date": "2025-12-29", "name": "Office shut"}],
    }
    twin = api.patch(f"{API}/calendars/{twin.json()['id']}", patch, content_type="application/json")
    page_made = api.get(f"{API}/calendars/{calendar_id}").json()
    assert without(page_made, "id", "name") == without(twin.json(), "id", "name")
    assert page_made["name"] == "Scotland office" and page_made["time_zone"] == "Europe/Dublin"
    removed = console.post(f"{created['Location']}closed-days/2025-12-29/remove/")
    assert removed.status_code == 302
    assert api.get(f"{API}/calendars/{calendar_id}").json()["closed_days"] == []
    with tenant_context(tenant_a):
        verbs = list(
            ActivityEntry.objects.filter(record_id=calendar_id)
            .order_by("at", "id")
            .values_list("verb", flat=True)
        )
    assert verbs == [
        "sla_calendar.created",
        "sla_calendar.changed",
        "sla_calendar.changed",
        "sla_calendar.changed",
    ]


@pytest.mark.parametrize(
    ("data", "field", "message"),
    [
        (
            {"time_zone": "Europe/Atlantis"},
            "time_zone",
            "unknown time zone &#x27;Europe/Atlantis&#x27;",
        ),
        (
            week(mon="09:00-12:00, 11:30-17:00"),
            "working_hours",
            "intervals overlap on weekday 0 at 11:30-17:00",
        ),
        ({"holiday_country": "XX"}, "holiday_country", None),
        (week(tue="9am-5pm"), "working_hours", "Tuesday: &quot;9am-5pm&quot; is not HH:MM-HH:MM"),
    ],
)
def test_bad_calendar_shows_the_error_next_to_the_field_and_writes_nothing(
    client_for: ClientFor,
    tenant_a: Tenant,
    admin_a: User,
    data: dict[str, str],
    field: str,
    message: str | None,
) -> None:
    with tenant_context(tenant_a):
        existing = london_calendar()
    console = client_for(admin_a)
    post = {"name": "Bad", "time_zone": "Europe/London", **week(mon="09:00-17:00"), **data}
    before = writes(tenant_a)
    for url in (f"{BASE}calendars/new/", f"{BASE}calendars/{existing.pk}/"):
        refused = console.post(url, post)
        body = refused.content.decode()
        assert refused.status_code == 422, url
        errors = f'<ul class="errorlist" id="id_{field}_error"><li>'
        assert errors in body, url
        if message is not None:
            assert f"{errors}{message}</li></ul>" in body, url
    assert writes(tenant_a) == before
    with tenant_context(tenant_a):
        assert BusinessCalendar.objects.get().name == "London office"


def test_closed_day_listed_twice_shows_the_error_on_the_date(
    client_for: ClientFor, tenant_a: Tenant, admin_a: User
) -> None:
    console = client_for(admin_a)
    with tenant_context(tenant_a):
        calendar = london_calendar()
    url = f"{BASE}calendars/{calendar.pk}/closed-days/"
    assert console.post(url, {"date": "2025-08-01", "name": "Move"}).status_code == 302
    before = writes(tenant_a)
    refused = console.post(url, {"date": "2025-08-01", "name": "Again"})
    assert refused.status_code == 422
    assert (
        '<ul class="errorlist" id="id_closed_date_error"><li>a date is listed twice</li></ul>'
        in refused.content.decode()
    )
    assert writes(tenant_a) == before
    missing = console.post(f"{BASE}calendars/{calendar.pk}/closed-days/2025-08-02/remove/")
    assert missing.status_code == 404 and writes(tenant_a) == before


def level_post(*levels: dict[str, Any], initial: int) -> dict[str, Any]:
    """The escalation level formset as the browser posts it (``initial`` forms shown before)."""
    data: dict[str, Any] = {
        "levels-TOTAL_FORMS": str(len(levels)),
        "levels-INITIAL_FORMS": str(initial),
        "levels-MIN_NUM_FORMS": "0",
        "levels-MAX_NUM_FORMS": "1000",
    }
    for index, level in enumerate(levels):
        data.update({f"levels-{index}-{key}": value for key, value in level.items()})
    return data


def test_admin_creates_and_edits_a_policy_as_the_api_would(
    client_for: ClientFor, api_for: Callable[[User], Client], tenant_a: Tenant, client_admin_a: User
) -> None:
    with tenant_context(tenant_a):
        office = london_calendar()
        night = london_calendar("Night shift")
        managed = contract(office)
        team = Group.objects.create(name="Major incident team")
        duty = Person.objects.create(display_name="Duty Manager", email="duty@acme.example")
    console, api = client_for(client_admin_a), api_for(client_admin_a)
    new_url = f"{BASE}contracts/{managed.pk}/policies/new/"
    form = console.get(new_url).content.decode()
    assert 'name="levels-INITIAL_FORMS" value="6"' in form  # the default levels, both timers
    fields = {
        "name": "P1/P2 email",
        "order": "10",
        "record_type": "incident",
        "priorities": ["1", "2"],
        "category": "Email",
        "response_target": "30",
        "response_unit": "minutes",
        "resolution_target": "4",
        "resolution_unit": "hours",
        "business_time": "business",
        "calendar": "",
    }
    levels = level_post(
        {"kind": "resolution", "percent": "50", "notify_assignee": "on", "notify_persons": [str(duty.pk)]},
        {"kind": "response", "percent": "100", "reassign_group": str(team.pk), "raise_priority": "on"},
        initial=2,
    )
    created = console.post(new_url, {**fields, **levels})
    assert created.status_code == 302, created.content.decode()
    policy_url = created["Location"]
    policy_id = policy_url.removeprefix(f"{BASE}policies/").strip("/")
    api_levels = [
        {
            "kind": "resolution",
            "percent": 50,
            "actions": {"notify_assignee": True, "notify_persons": [str(duty.pk)]},
        },
        {
            "kind": "response",
            "percent": 100,
            "actions": {"reassign_group": str(team.pk), "raise_priority": True},
        },
    ]
    twin = api.post(
        f"{API}/policies",
        {
            "contract_id": str(managed.pk),
            "name": "API twin",
            "order": 10,
            "record_type": "incident",
            "priorities": [1, 2],
            "category": "Email",
            "response_target_minutes": 30,
            "resolution_target_minutes": 240,
            "business_time": True,
            "levels": api_levels,
        },
        content_type="application/json",
    )
    assert twin.status_code == 201, twin.content
    page_made = api.get(f"{API}/policies/{policy_id}").json()
    assert without(page_made, "id", "name") == without(twin.json(), "id", "name")
    assert page_made["resolution_target_minutes"] == 240 and page_made["calendar_id"] is None
    shown = console.get(policy_url).content.decode()
    assert 'name="levels-INITIAL_FORMS" value="2"' in shown
    assert 'name="resolution_target" value="4"' in shown

    # Edit: 90 minutes of calendar time on the night calendar; the first level moved to 60 %, the second
    # deleted, a third added.
    edits = {
        **fields,
        "resolution_target": "90",
        "resolution_unit": "minutes",
        "business_time": "24x7",
        "calendar": str(night.pk),
    }
    levels = level_post(
        {"kind": "resolution", "percent": "60", "notify_assignee": "on", "notify_persons": [str(duty.pk)]},
        {"kind": "response", "percent": "100", "reassign_group": str(team.pk), "DELETE": "on"},
        {"kind": "resolution", "percent": "100", "notify_group": "on"},
        initial=2,
    )
    edited = console.post(policy_url, {**edits, **levels})
    assert edited.status_code == 302 and edited["Location"] == policy_url
    twin = api.patch(
        f"{API}/policies/{twin.json()['id']}",
        {
            "resolution_target_minutes": 90,
            "business_time": False,
            "calendar_id": str(night.pk),
            "levels": [
                {**api_levels[0], "percent": 60},
                {"kind": "resolution", "percent": 100, "actions": {"notify_group": True}},
            ],
        },
        content_type="application/json",
    )
    assert twin.status_code == 200, twin.content
    page_made = api.get(f"{API}/policies/{policy_id}").json()
    assert without(page_made, "id", "name") == without(twin.json(), "id", "name")
    assert [lv["percent"] for lv in page_made["levels"]] == [60, 100]
    with tenant_context(tenant_a):
        verbs = list(ActivityEntry.objects.filter(record_id=policy_id).values_list("verb", flat=True))
    assert sorted(verbs) == ["sla_policy.changed", "sla_policy.created"]
    listing = console.get(f"{BASE}contracts/{managed.pk}/").content.decode()
    assert f'href="{policy_url}">P1/P2 email</a>' in listing


def test_bad_policy_shows_errors_next_to_the_fields_and_writes_nothing(
    client_for: ClientFor, tenant_a: Tenant, admin_a: User
) -> None:
    with tenant_context(tenant_a):
        managed = contract(london_calendar())
        existing = policy(managed, resolution_target_minutes=480)
    console = client_for(admin_a)
    fields = {
        "name": "Requests",
        "order": "100",
        "record_type": "service_request",
        "business_time": "business",
    }
    before = writes(tenant_a)
    refused = console.post(
        f"{BASE}contracts/{managed.pk}/policies/new/",
        {
            **fields,
            "priorities": ["2"],
            "resolution_target": "8",
            "resolution_unit": "hours",
            **level_post(initial=0),
        },
    )
    assert refused.status_code == 422
    assert (
        '<ul class="errorlist" id="id_priorities_error"><li>service requests have no priority</li></ul>'
        in (refused.content.decode())
    )
    refused = console.post(
        f"{BASE}contracts/{managed.pk}/policies/new/",
        {**fields, "resolution_target": "0", "resolution_unit": "minutes", **level_post(initial=0)},
    )
    assert (
        '<ul class="errorlist" id="id_resolution_target_error"><li>1-525600 minutes (one year)</li></ul>'
        in (refused.content.decode())
    )
    refused = console.post(
        f"{BASE}policies/{existing.pk}/",
        {
            **fields,
            "record_type": "incident",
            "resolution_target": "8",
            "resolution_unit": "hours",
            **level_post(
                {"kind": "resolution", "percent": "80"}, {"kind": "resolution", "percent": "80"}, initial=0
            ),
        },
    )
    body = refused.content.decode()
    assert refused.status_code == 422
    assert (
        '<ul class="errorlist" id="id_levels-1-percent_error"><li>another level of this kind has this percent</li></ul>'
        in body
    )
    assert writes(tenant_a) == before


def test_technician_reads_but_cannot_change_and_end_user_is_refused(
    client_for: ClientFor, tenant_a: Tenant, tech_a: User, end_user_a: User
) -> None:
    with tenant_context(tenant_a):
        calendar = london_calendar()
        managed = contract(calendar)
        existing = policy(managed, resolution_target_minutes=480)
    tech = client_for(tech_a)
    home = tech.get(BASE).content.decode()
    assert "London office" in home and "Managed service" in home and "+ New" not in home
    page = tech.get(f"{BASE}calendars/{calendar.pk}/").content.decode()
    assert (
        'name="name" value="London office"' in page
        and "disabled" in page
        and "<button>Save</button>" not in page
    )
    before = writes(tenant_a)
    posts = [
        (f"{BASE}calendars/new/", {"name": "Tech", "time_zone": "Europe/London", **week(mon="09:00-17:00")}),
        (f"{BASE}calendars/{calendar.pk}/", {"name": "Tech", "time_zone": "UTC", **week(mon="09:00-17:00")}),
        (f"{BASE}calendars/{calendar.pk}/closed-days/", {"date": "2025-08-01"}),
        (f"{BASE}contracts/new/", {"name": "Tech", "starts_on": "2025-01-01", "calendar": str(calendar.pk)}),
        (
            f"{BASE}contracts/{managed.pk}/",
            {"name": "Tech", "starts_on": "2025-01-01", "calendar": str(calendar.pk)},
        ),
        (f"{BASE}contracts/{managed.pk}/policies/new/", {"name": "Tech", "record_type": "incident"}),
        (f"{BASE}policies/{existing.pk}/", {"name": "Tech", "record_type": "incident"}),
    ]
    for url, data in posts:
        response = tech.post(url, data)
        assert response.status_code == 403, url
        assert "(config.manage)" in response.content.decode()
    assert writes(tenant_a) == before
    end_user = client_for(end_user_a)
    for url in (BASE, f"{BASE}calendars/{calendar.pk}/", f"{BASE}policies/{existing.pk}/"):
        assert end_user.get(url).status_code == 403, url
    assert end_user.post(f"{BASE}calendars/new/", posts[0][1]).status_code == 403
    assert writes(tenant_a) == before


def test_admin_creates_and_deactivates_a_contract(
    client_for: ClientFor, api_for: Callable[[User], Client], tenant_a: Tenant, admin_a: User
) -> None:
    with tenant_context(tenant_a):
        calendar = london_calendar()
    console = client_for(admin_a)
    data = {
        "name": "Managed service",
        "starts_on": "2025-01-01",
        "active": "on",
        "calendar": str(calendar.pk),
    }
    refused = console.post(f"{BASE}contracts/new/", {**data, "ends_on": "2024-12-31"})
    assert refused.status_code == 422
    assert (
        '<ul class="errorlist" id="id_ends_on_error"><li>before starts_on</li></ul>'
        in refused.content.decode()
    )
    created = console.post(f"{BASE}contracts/new/", data)
    assert created.status_code == 302
    contract_id = created["Location"].removeprefix(f"{BASE}contracts/").strip("/")
    edited = console.post(created["Location"], without(data, "active"))
    assert edited.status_code == 302
    assert api_for(admin_a).get(f"{API}/contracts/{contract_id}").json() == {
        "id": contract_id,
        "name": "Managed service",
        "starts_on": "2025-01-01",
        "ends_on": None,
        "active": False,
        "calendar_id": str(calendar.pk),
    }


def test_another_tenant_s_ids_are_404_under_a_s_path(
    client_for: ClientFor, tenant_a: Tenant, tenant_b: Tenant, tech_ab: User, admin_a: User
) -> None:
    with tenant_context(tenant_b):
        calendar_b = london_calendar("Globex office")
        contract_b = contract(calendar_b)
        policy_b = policy(contract_b, resolution_target_minutes=60)
    before = writes(tenant_b)
    for user in (tech_ab, admin_a):
        console = client_for(user)
        for path in ("calendars/{}/", "contracts/{}/", "contracts/{}/policies/new/", "policies/{}/"):
            foreign_id = {"calendars": calendar_b.pk, "contracts": contract_b.pk, "policies": policy_b.pk}[
                path.split("/")[0]
            ]
            foreign = console.get(BASE + path.format(foreign_id))
            missing = console.get(BASE + path.format(uuid7()))
            assert foreign.status_code == missing.status_code == 404, path
        # Changing needs config.manage: the technician is refused by the route (403) whatever the id;
        # the admin reaches the view, where B's id is as missing as an unknown one.
        refused = 404 if user == admin_a else 403
        for path in ("calendars/{}/", "calendars/{}/closed-days/"):
            posted = console.post(BASE + path.format(calendar_b.pk), {"date": "2025-08-01", "name": "x"})
            assert posted.status_code == refused, path
        posted = console.post(f"{BASE}calendars/{calendar_b.pk}/closed-days/2025-08-01/remove/")
        assert posted.status_code == refused
    assert writes(tenant_b) == before
    # B's own path shows it to the technician with a grant there.
    assert client_for(tech_ab).get(f"/t/globex/sla/calendars/{calendar_b.pk}/").status_code == 200
