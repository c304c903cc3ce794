"""Incidents wired to the CMDB and to known errors: the affected CI through the API and the console form
(resolved for the actor; an unknown or other tenant's CI is a 422 naming the field and writes nothing),
the CI's impact and the linked problem on the incident page, and known errors matching an incident (the
htmx box on the page, and ``GET /incidents/{id}/known-errors``)."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from typing import Any

from django.test import Client
from django_tenants.utils import tenant_context

from conftest import actor_in
from controlplane.accounts.models import User
from modules.cmdb.models import ConfigurationItem
from modules.cmdb.services import ci_create, relationship_create
from modules.incidents.models import Incident
from modules.incidents.selectors import known_error_query
from modules.incidents.services import incident_create, incident_problem_set
from modules.problems.models import KnownError
from modules.problems.services import (
    known_error_create,
    known_error_publish,
    known_error_retire,
    problem_create,
)
from modules.records.actor import Actor
from modules.records.models import ActivityEntry
from tenants.models import Tenant

BASE = "/api/v1/t/acme/incidents/"
ApiFor = Callable[[User], Client]
ClientFor = Callable[..., Client]


def new_ci(
    tenant: Tenant, user: User, name: str, ci_class: str = "server", **fields: Any
) -> ConfigurationItem:
    with tenant_context(tenant):
        return ci_create(actor=actor_in(tenant, user), name=name, ci_class=ci_class, **fields)


def post(api: Client, url: str, body: Any) -> Any:
    return api.post(url, body, content_type="application/json")


def patch(api: Client, url: str, body: Any) -> Any:
    return api.patch(url, body, content_type="application/json")


def writes(tenant: Tenant) -> tuple[int, int]:
    with tenant_context(tenant):
        return Incident.objects.count(), ActivityEntry.objects.filter(record_type="incident").count()


def error_fields(response: Any) -> list[str]:
    assert response.status_code == 422, response.content
    assert response["Content-Type"] == "application/problem+json"
    return [e["field"] for e in response.json()["errors"]]


# API: configuration_item_id


def test_api_sets_and_clears_the_configuration_item_with_history(
    api_for: ApiFor, tech_a: User, tenant_a: Tenant
) -> None:
    server = new_ci(tenant_a, tech_a, "mail01")
    api = api_for(tech_a)
    created = post(api, BASE, {"short_description": "Mail down", "configuration_item_id": str(server.pk)})
    assert created.status_code == 201, created.content
    body = created.json()
    assert body["configuration_item_id"] == str(server.pk)
    assert api.get(f"{BASE}{body['id']}").json()["configuration_item_id"] == str(server.pk)

    cleared = patch(api, f"{BASE}{body['id']}", {"configuration_item_id": None})
    assert cleared.status_code == 200 and cleared.json()["configuration_item_id"] is None
    with tenant_context(tenant_a):
        assert Incident.objects.get(pk=body["id"]).configuration_item_id is None
        entries = list(ActivityEntry.objects.filter(record_id=body["id"]).order_by("at", "id"))
    ci_ref = {"id": str(server.pk), "name": "CI0000001 mail01 (Server)"}
    assert [e.verb for e in entries] == ["incident.created", "incident.updated"]
    assert entries[0].changes["configuration_item"] == [None, ci_ref]
    assert entries[1].changes == {"configuration_item": [ci_ref, None]}

    reset = patch(api, f"{BASE}{body['id']}", {"configuration_item_id": str(server.pk)})
    assert reset.status_code == 200 and reset.json()["configuration_item_id"] == str(server.pk)


def test_api_without_a_ci_records_no_ci_in_the_created_entry(
    api_for: ApiFor, tech_a: User, tenant_a: Tenant
) -> None:
    body = post(api_for(tech_a), BASE, {"short_description": "Printer jam"}).json()
    assert body["configuration_item_id"] is None
    with tenant_context(tenant_a):
        entry = ActivityEntry.objects.get(record_id=body["id"])
    assert "configuration_item" not in entry.changes


def test_api_unknown_ci_is_a_422_naming_the_field_and_writes_nothing(
    api_for: ApiFor, tech_a: User, tenant_a: Tenant
) -> None:
    api = api_for(tech_a)
    incident = post(api, BASE, {"short_description": "Mail down"}).json()
    before = writes(tenant_a)
    missing = str(uuid.uuid4())
    assert error_fields(post(api, BASE, {"short_description": "x", "configuration_item_id": missing})) == [
        "configuration_item_id"
    ]
    assert error_fields(patch(api, f"{BASE}{incident['id']}", {"configuration_item_id": missing})) == [
        "configuration_item_id"
    ]
    assert writes(tenant_a) == before


def test_api_other_tenants_ci_is_a_422_like_a_missing_one_and_writes_nothing(
    api_for: ApiFor, tech_ab: User, tenant_a: Tenant, tenant_b: Tenant
) -> None:
    """tech_ab may see tenant B's CMDB, yet under tenant A's path B's CI does not exist."""
    globex_ci = new_ci(tenant_b, tech_ab, "globex-db")
    api = api_for(tech_ab)
    incident = post(api, BASE, {"short_description": "Mail down"}).json()
    before = writes(tenant_a), writes(tenant_b)
    created = post(api, BASE, {"short_description": "x", "configuration_item_id": str(globex_ci.pk)})
    patched = patch(api, f"{BASE}{incident['id']}", {"configuration_item_id": str(globex_ci.pk)})
    assert error_fields(created) == error_fields(patched) == ["configuration_item_id"]
    assert created.json()["detail"] == "configuration_item_id: not found"
    assert (writes(tenant_a), writes(tenant_b)) == before
    with tenant_context(tenant_a):
        assert Incident.objects.get(pk=incident["id"]).configuration_item_id is None


def test_api_end_user_may_name_only_a_ci_they_own(
    api_for: ApiFor, tech_a: User, end_user_a: User, tenant_a: Tenant
) -> None:
    with tenant_context(tenant_a):
        alice = actor_in(tenant_a, end_user_a, "end_user")
        laptop = ci_create(
            actor=actor_in(tenant_a, tech_a), name="alice-laptop", ci_class="computer", owner=alice.person
        )
    server = new_ci(tenant_a, tech_a, "mail01")
    api = api_for(end_user_a)
    before = writes(tenant_a)
    refused = post(api, BASE, {"short_description": "Slow", "configuration_item_id": str(server.pk)})
    assert error_fields(refused) == ["configuration_item_id"]
    assert writes(tenant_a) == before
    own = post(api, BASE, {"short_description": "Slow", "configuration_item_id": str(laptop.pk)})
    assert own.status_code == 201 and own.json()["configuration_item_id"] == str(laptop.pk)


# Console form: CI number


def test_console_form_takes_a_ci_number(client_for: ClientFor, tech_a: User, tenant_a: Tenant) -> None:
    server = new_ci(tenant_a, tech_a, "mail01")  # CI0000001
    console = client_for(tech_a)
    form = console.get("/t/acme/incidents/new/").content.decode()
    assert '<label for="id_ci_number">CI number</label>' in form
    fields = {"short_description": "Mail down", "impact": 2, "urgency": 2, "contact_type": "phone"}

    unknown = console.post("/t/acme/incidents/new/", {**fields, "ci_number": "CI0009999"})
    assert unknown.status_code == 422
    assert unknown.context["form"].errors == {"ci_number": ["No configuration item with this number."]}
    assert writes(tenant_a) == (0, 0)

    created = console.post("/t/acme/incidents/new/", {**fields, "ci_number": " ci0000001 "})
    assert created.status_code == 302 and created["Location"] == "/t/acme/incidents/INC0000001/"
    with tenant_context(tenant_a):
        incident = Incident.objects.get()
        assert incident.configuration_item_id == server.pk

    edit = console.get("/t/acme/incidents/INC0000001/edit/").content.decode()
    assert 'name="ci_number" value="CI0000001"' in edit
    cleared = console.post(
        "/t/acme/incidents/INC0000001/edit/", {**fields, "caller": str(incident.caller_id), "ci_number": ""}
    )
    assert cleared.status_code == 302
    with tenant_context(tenant_a):
        assert Incident.objects.get().configuration_item_id is None
        assert ActivityEntry.objects.filter(verb="incident.updated").get().changes == {
            "configuration_item": [{"id": str(server.pk), "name": "CI0000001 mail01 (Server)"}, None]
        }


def test_console_form_refuses_another_tenants_ci_number(
    client_for: ClientFor, tech_ab: User, tenant_a: Tenant, tenant_b: Tenant
) -> None:
    new_ci(tenant_b, tech_ab, "globex-db")  # CI0000001 in Globex; none in Acme
    response = client_for(tech_ab).post(
        "/t/acme/incidents/new/",
        {
            "short_description": "x",
            "impact": 2,
            "urgency": 2,
            "contact_type": "phone",
            "ci_number": "CI0000001",
        },
    )
    assert response.status_code == 422 and "ci_number" in response.context["form"].errors
    assert writes(tenant_a) == (0, 0)


# Incident page: CI, impact, problem, known error box


def _chain(tenant: Tenant, user: User) -> Incident:
    """host -> vm -> app -> Sales (business service) -> Portal (a fourth hop, beyond depth 3); an incident
    on the host linked to a problem."""
    with tenant_context(tenant):
        tech = actor_in(tenant, user)
        host = ci_create(actor=tech, name="esx1", ci_class="server")  # CI0000001
        vm = ci_create(actor=tech, name="vm-crm", ci_class="virtual_machine")  # CI0000002
        app = ci_create(actor=tech, name="CRM", ci_class="application")  # CI0000003
        sales = ci_create(actor=tech, name="Sales", ci_class="business_service")  # CI0000004
        portal = ci_create(actor=tech, name="Portal", ci_class="business_service")  # CI0000005
        for source, rel_type, target in (
            (vm, "hosted_on", host),
            (app, "runs_on", vm),
            (sales, "depends_on", app),
            (portal, "depends_on", sales),
        ):
            relationship_create(actor=tech, source_id=source.pk, target_id=target.pk, rel_type=rel_type)
        incident = incident_create(
            actor=tech, short_description="VPN drops every hour", configuration_item=host
        )
        problem = problem_create(actor=tech, short_description="Recurring VPN drops")
        return incident_problem_set(actor=tech, incident=incident, problem=problem)


def test_detail_shows_the_ci_its_impact_and_the_problem_to_technicians(
    client_for: ClientFor, tech_a: User, tenant_a: Tenant
) -> None:
    _chain(tenant_a, tech_a)
    response = client_for(tech_a).get("/t/acme/incidents/INC0000001/")
    page = response.content.decode()
    assert response.status_code == 200
    assert '<a href="/t/acme/cmdb/CI0000001/">CI0000001</a> esx1' in page
    assert '<a href="/t/acme/problems/PRB0000001/">PRB0000001</a> Recurring VPN drops' in page
    impact = page.split('id="ci-impact"')[1].split("</ul>")[0]
    assert re.findall(r'href="/t/acme/cmdb/(CI\d+)/"', impact) == ["CI0000002", "CI0000003", "CI0000004"]
    assert "Portal" not in impact  # four hops away: beyond the page's depth of 3
    assert impact.count('class="impact-service"') == 1
    assert (
        '<li class="impact-service">\n        <a href="/t/acme/cmdb/CI0000004/">CI0000004</a> Sales' in impact
    )
    assert "CI0000001 hosts CI0000002, CI0000002 runs CI0000003, CI0000003 used by CI0000004" in impact


def test_detail_hides_impact_problem_and_known_errors_from_the_caller(
    client_for: ClientFor, tech_a: User, end_user_a: User, tenant_a: Tenant
) -> None:
    with tenant_context(tenant_a):
        alice = actor_in(tenant_a, end_user_a, "end_user")
        tech = actor_in(tenant_a, tech_a)
        laptop = ci_create(actor=tech, name="alice-laptop", ci_class="computer", owner=alice.person)
        incident = incident_create(actor=alice, short_description="Laptop slow", configuration_item=laptop)
        incident_problem_set(
            actor=tech, incident=incident, problem=problem_create(actor=tech, short_description="P")
        )
    response = client_for(end_user_a).get(f"/t/acme/incidents/{incident.number}/")
    page = response.content.decode()
    assert response.status_code == 200
    assert "CI0000001 alice-laptop" in page  # the CI named, not linked into the CMDB
    for hidden in ('id="ci-impact"', 'id="known-errors"', "PRB0000001", "/cmdb/CI", "known-errors/search"):
        assert hidden not in page


def test_detail_has_the_known_error_search_box_prefilled(
    client_for: ClientFor, tech_a: User, tenant_a: Tenant
) -> None:
    _chain(tenant_a, tech_a)
    with tenant_context(tenant_a):
        tech = actor_in(tenant_a, tech_a)
        ke = known_error_create(
            actor=tech,
            title="VPN drops every hour after sleep",
            symptoms="tunnel drops",
            workaround="reconnect",
        )
        known_error_publish(actor=tech, known_error=ke)
    console = client_for(tech_a)
    page = console.get("/t/acme/incidents/INC0000001/").content.decode()
    box = page.split('id="known-errors"')[1].split("</div>")[0]
    assert 'name="q" value="VPN or drops or every or hour"' in box  # any word: ranked by how many
    assert 'hx-get="/t/acme/problems/known-errors/search/"' in box
    assert 'hx-trigger="load, keyup changed delay:300ms"' in box and 'hx-target="#known-error-results"' in box
    assert 'action="/t/acme/problems/known-errors/"' in box  # without JS the form opens the list
    assert 'href="/t/acme/problems/known-errors/?q=VPN%20or%20drops%20or%20every%20or%20hour"' in box
    # What the box loads: the problems module's fragment for that text.
    fragment = console.get(
        "/t/acme/problems/known-errors/search/", {"q": "VPN drops every hour"}, HTTP_HX_REQUEST="true"
    )
    assert fragment.status_code == 200
    assert (
        '<a href="/t/acme/problems/known-errors/KE0000001/">KE0000001</a> VPN drops every hour after sleep'
        in (fragment.content.decode())
    )


def test_the_known_error_query_keeps_the_words_that_help() -> None:
    incident = Incident(short_description="Printer on floor 2 jams and the printer smokes")
    assert known_error_query(incident) == "Printer or floor or jams or smokes"


# API: known errors matching an incident


def _known_error(
    actor: Actor, title: str, symptoms: str = "", *, publish: bool = True, retire: bool = False
) -> KnownError:
    ke = known_error_create(
        actor=actor, title=title, symptoms=symptoms or title, workaround="reboot the router"
    )
    if publish:
        ke = known_error_publish(actor=actor, known_error=ke)
    if retire:
        ke = known_error_retire(actor=actor, known_error=ke)
    return ke


def test_api_lists_known_errors_matching_the_incident(
    api_for: ApiFor, tech_a: User, end_user_a: User, tenant_a: Tenant
) -> None:
    with tenant_context(tenant_a):
        tech = actor_in(tenant_a, tech_a)
        best = _known_error(tech, "VPN drops", "the VPN drops hourly; VPN drops after sleep")  # KE0000001
        draft = _known_error(tech, "Router firmware: VPN drops on rekey", "tunnel lost", publish=False)
        _known_error(tech, "VPN drops when docked", retire=True)  # KE0000003, retired: no longer offered
        _known_error(tech, "Printer jams on A3")  # KE0000004, unrelated
        alice = actor_in(tenant_a, end_user_a, "end_user")
        incident = incident_create(actor=alice, short_description="VPN drops")
    response = api_for(tech_a).get(f"{BASE}{incident.pk}/known-errors")
    assert response.status_code == 200, response.content
    body = response.json()
    assert [k["number"] for k in body] == ["KE0000001", "KE0000002"]
    assert body[0]["id"] == str(best.pk) and body[1]["id"] == str(draft.pk)
    assert body[0]["rank"] > body[1]["rank"] > 0
    assert set(body[0]) == {
        "id",
        "number",
        "title",
        "state",
        "symptoms",
        "workaround",
        "permanent_fix",
        "problem_id",
        "rank",
        "updated_at",
    }
    assert (body[0]["state"], body[1]["state"], body[0]["workaround"]) == (
        "published",
        "draft",
        "reboot the router",
    )
    # The caller sees their incident but known errors are technicians' data.
    own = api_for(end_user_a).get(f"{BASE}{incident.pk}/known-errors")
    assert own.status_code == 403 and own["X-Required-Permission"] == "record.work"


def test_a_long_short_description_still_finds_a_known_error_sharing_some_words(
    api_for: ApiFor, tech_a: User, tenant_a: Tenant
) -> None:
    with tenant_context(tenant_a):
        tech = actor_in(tenant_a, tech_a)
        _known_error(tech, "Outlook freezes on start", "Outlook freezes when the add-in loads")
        _known_error(tech, "Printer jams on A3")
        incident = incident_create(
            actor=tech, short_description="Since this morning Outlook freezes for the whole sales team"
        )
    body = api_for(tech_a).get(f"{BASE}{incident.pk}/known-errors").json()
    assert [k["title"] for k in body] == ["Outlook freezes on start"]


def test_api_known_errors_of_another_tenants_incident_is_a_404(
    api_for: ApiFor, tech_ab: User, tech_a: User, tenant_a: Tenant, tenant_b: Tenant
) -> None:
    with tenant_context(tenant_b):
        globex = incident_create(actor=actor_in(tenant_b, tech_ab), short_description="VPN drops")
    api = api_for(tech_a)
    other = api.get(f"{BASE}{globex.pk}/known-errors")
    missing = api.get(f"{BASE}{uuid.uuid4()}/known-errors")
    assert other.status_code == missing.status_code == 404
    assert other.json()["type"] == missing.json()["type"]
