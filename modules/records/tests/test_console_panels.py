"""The console wired together: the practice navigation in the page header, and the shared attachments
and links panel (``{% record_panel %}``) on the detail page of every record kind."""

from __future__ import annotations

import io
import re
from collections.abc import Callable
from typing import Any

from django.test import Client
from django_tenants.utils import tenant_context

from conftest import actor_in
from controlplane.accounts.models import User
from modules.changes.services import change_create
from modules.cmdb.services import ci_create
from modules.incidents.services import incident_create
from modules.knowledge.services import article_create
from modules.problems.services import known_error_create, problem_create
from modules.records.models import Attachment, RecordLink
from modules.requests.services import catalog_category_create, catalog_item_create, request_submit
from tenants.models import Tenant

ClientFor = Callable[..., Client]
PDF = b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<<>>\nendobj\n"


def page_of(console: Client, url: str) -> str:
    response = console.get(url)
    assert response.status_code == 200, url
    return response.content.decode()


def assert_panel(page: str, kind: str, record: Any) -> None:
    """The page carries the shared panel for ``record``: its attachments (with the upload form naming the
    record's kind and id) and, for technicians, its linked records with the link form."""
    upload = page.split('action="/t/acme/attachments/add/"')[1].split("</form>")[0]
    assert f'name="record_type" value="{kind}"' in upload
    assert f'name="record_id" value="{record.pk}"' in upload
    assert "<h2>Attachments</h2>" in page and "<h2>Linked records</h2>" in page
    link = page.split('action="/t/acme/links/add/"')[1].split("</form>")[0]
    assert f'name="source_type" value="{kind}"' in link and f'name="source_id" value="{record.pk}"' in link


def test_header_navigation_names_every_practice_and_marks_the_current_one(
    client_for: ClientFor, tech_a: User, tenant_a: Tenant
) -> None:
    page = page_of(client_for(tech_a), "/t/acme/problems/known-errors/")
    nav = page.split('<nav aria-label="Practices"')[1].split("</nav>")[0]
    assert re.findall(r'<a href="([^"]+)"[^>]*>([^<]+)</a>', nav) == [
        ("/t/acme/dashboard/", "Dashboard"),
        ("/t/acme/incidents/", "Incidents"),
        ("/t/acme/requests/", "Requests"),
        ("/t/acme/problems/", "Problems"),
        ("/t/acme/changes/", "Changes"),
        ("/t/acme/cmdb/", "CMDB"),
        ("/t/acme/agents/", "Agents"),
        ("/t/acme/monitoring/", "Monitoring"),
        ("/t/acme/sla/", "SLAs"),
        ("/t/acme/knowledge/", "Knowledge"),
        ("/t/acme/search/", "Search"),
        ("/t/acme/mailin/", "Email in"),
        ("/t/acme/notifications/settings/", "Settings"),
        ("/t/acme/branding/", "Branding"),
    ]
    assert re.findall(r'<a href="([^"]+)" aria-current="page">', nav) == ["/t/acme/problems/"]
    search = page_of(client_for(tech_a), "/t/acme/search/?q=mail")
    assert re.findall(r'<a href="([^"]+)" aria-current="page">', search) == ["/t/acme/search/"]
    mailin = page_of(client_for(tech_a), "/t/acme/mailin/")
    assert re.findall(r'<a href="([^"]+)" aria-current="page">', mailin) == ["/t/acme/mailin/"]


def test_the_email_in_link_is_for_technicians_only(
    client_for: ClientFor, tech_a: User, end_user_a: User, tenant_a: Tenant
) -> None:
    """The inbound addresses page is the provider's plumbing (404 for anyone else): no link to it."""
    assert 'href="/t/acme/mailin/"' in page_of(client_for(tech_a), "/t/acme/incidents/")
    end_user_page = page_of(client_for(end_user_a), "/t/acme/incidents/")
    assert 'aria-label="Practices"' in end_user_page
    assert 'href="/t/acme/mailin/"' not in end_user_page


def test_no_practice_navigation_outside_a_tenant(client_for: ClientFor, tech_a: User) -> None:
    assert 'aria-label="Practices"' not in page_of(client_for(tech_a), "/")


def test_service_request_page_has_the_panel(client_for: ClientFor, tech_a: User, tenant_a: Tenant) -> None:
    with tenant_context(tenant_a):
        tech = actor_in(tenant_a, tech_a)
        category = catalog_category_create(actor=tech, name="Hardware")
        laptop = catalog_item_create(actor=tech, name="Laptop", category=category)
        request = request_submit(actor=tech, items=[{"catalog_item": laptop, "variables": {}, "quantity": 1}])
    assert_panel(
        page_of(client_for(tech_a), f"/t/acme/requests/{request.number}/"), "service_request", request
    )


def test_problem_page_has_the_panel(client_for: ClientFor, tech_a: User, tenant_a: Tenant) -> None:
    with tenant_context(tenant_a):
        problem = problem_create(actor=actor_in(tenant_a, tech_a), short_description="Mail outages")
    assert_panel(page_of(client_for(tech_a), f"/t/acme/problems/{problem.number}/"), "problem", problem)


def test_known_error_page_has_the_panel(client_for: ClientFor, tech_a: User, tenant_a: Tenant) -> None:
    with tenant_context(tenant_a):
        known_error = known_error_create(actor=actor_in(tenant_a, tech_a), title="Relay certificate expired")
    page = page_of(client_for(tech_a), f"/t/acme/problems/known-errors/{known_error.number}/")
    assert_panel(page, "known_error", known_error)


def test_change_page_has_the_panel(client_for: ClientFor, tech_a: User, tenant_a: Tenant) -> None:
    with tenant_context(tenant_a):
        change = change_create(
            actor=actor_in(tenant_a, tech_a), change_type="normal", short_description="Patch the mail server"
        )
    assert_panel(page_of(client_for(tech_a), f"/t/acme/changes/{change.number}/"), "change", change)


def test_ci_page_has_the_panel(client_for: ClientFor, tech_a: User, tenant_a: Tenant) -> None:
    with tenant_context(tenant_a):
        server = ci_create(actor=actor_in(tenant_a, tech_a), name="mail01", ci_class="server")
    assert_panel(page_of(client_for(tech_a), f"/t/acme/cmdb/{server.number}/"), "ci", server)


def test_article_page_has_the_panel_for_editors(
    client_for: ClientFor, tech_a: User, tenant_a: Tenant
) -> None:
    with tenant_context(tenant_a):
        article = article_create(actor=actor_in(tenant_a, tech_a), title="Reset a VPN token", body="Steps")
    assert_panel(page_of(client_for(tech_a), f"/t/acme/knowledge/{article.number}/"), "article", article)


def test_panel_upload_and_link_from_a_change_page(
    client_for: ClientFor, tech_a: User, tenant_a: Tenant
) -> None:
    """The panel's forms work from a page of another module: the file and the link show on both ends."""
    with tenant_context(tenant_a):
        tech = actor_in(tenant_a, tech_a)
        change = change_create(actor=tech, change_type="normal", short_description="Patch the mail server")
        incident = incident_create(actor=tech, short_description="Mail down after patching")
    console = client_for(tech_a)
    url = f"/t/acme/changes/{change.number}/"
    file = io.BytesIO(PDF)
    file.name = "backout-plan.pdf"
    posted = console.post(
        "/t/acme/attachments/add/",
        {"record_type": "change", "record_id": str(change.pk), "file": file, "next": url},
    )
    assert posted.status_code == 302 and posted["Location"] == url
    linked = console.post(
        "/t/acme/links/add/",
        {
            "source_type": "change",
            "source_id": str(change.pk),
            "target_number": incident.number,
            "kind": "caused_by",
            "next": url,
        },
    )
    assert linked.status_code == 302 and linked["Location"] == url
    with tenant_context(tenant_a):
        attachment = Attachment.objects.get()
        assert (attachment.record_id, attachment.file_name) == (change.pk, "backout-plan.pdf")
        assert RecordLink.objects.filter(source_id=change.pk, target_id=incident.pk).count() == 1
    page = page_of(console, url)
    assert f'<a href="/t/acme/attachments/{attachment.pk}/">backout-plan.pdf</a>' in page
    incident_link = f'<a href="/t/acme/incidents/{incident.number}/"><strong>{incident.number}</strong></a>'
    assert f"{incident_link} Mail down after patching" in page
    change_link = f'<a href="/t/acme/changes/{change.number}/"><strong>{change.number}</strong></a>'
    assert f"{change_link} Patch the mail server" in page_of(console, f"/t/acme/incidents/{incident.number}/")
