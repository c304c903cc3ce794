"""The portal home and help articles on a tenant's host: welcome text, search with snippets over
published portal articles only, popular and recent lists, the person's open records count, and query
counts that do not grow with the number of articles."""

from __future__ import annotations

from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django_tenants.utils import tenant_context

from conftest import actor_in
from controlplane.accounts.models import User
from modules.incidents.services import incident_create
from modules.knowledge.models import Article
from modules.knowledge.services import article_create, article_publish
from tenants.models import Tenant
from tenants.services import branding_update


def publish(
    tenant: Tenant, tech: User, title: str, body: str, *, audience: str = "portal", live: bool = True
) -> Article:
    with tenant_context(tenant):
        actor = actor_in(tenant, tech, role="admin")
        article = article_create(actor=actor, title=title, body=body, audience=audience)
        if live:
            article = article_publish(actor=actor, article=article)
        return article


def portal(user: User, host: str = "acme.localhost") -> Client:
    client = Client(HTTP_HOST=host)
    client.force_login(user)
    return client


def test_home_shows_welcome_links_articles_and_open_count(
    tenant_a: Tenant, tech_a: User, end_user_a: User
) -> None:
    with tenant_context(tenant_a):
        branding_update(
            actor=actor_in(tenant_a, tech_a),
            tenant=tenant_a,
            portal_title="Acme IT",
            welcome_text="Welcome to Acme's IT help.",
            primary_color="#1f3a5f",
            accent_color="#0b5cad",
        )
    publish(tenant_a, tech_a, "Reset your password", "Open the account page and choose Reset.")
    publish(tenant_a, tech_a, "Internal runbook", "technicians only", audience="technicians")
    publish(tenant_a, tech_a, "Draft about VPN", "not yet", live=False)
    client = portal(end_user_a)
    client.post("/report/", {"short_description": "Laptop slow", "urgency": 2})
    client.post("/report/", {"short_description": "Monitor dead", "urgency": 2})
    page = client.get("/").content.decode()
    assert "Welcome to Acme&#x27;s IT help." in page
    for link in ('href="/report/"', 'href="/catalog/"', 'href="/requests/"', 'href="/approvals/"'):
        assert link in page
    assert "You have <strong>2</strong> open records: 2 incidents and 0 requests." in page
    assert "Laptop slow" in page and "Monitor dead" in page
    assert "Reset your password" in page
    assert "Internal runbook" not in page and "Draft about VPN" not in page
    assert 'for="portal-q"' in page  # the search box has a label


def test_search_finds_published_portal_articles_with_a_snippet(
    tenant_a: Tenant, tech_a: User, end_user_a: User
) -> None:
    body = (
        "Printers on floor 3. " * 20 + "To fix a paper jam, open tray 2 and pull gently. " + "Thanks. " * 30
    )
    article = publish(tenant_a, tech_a, "Printer help", body)
    publish(tenant_a, tech_a, "Jam runbook", "paper jam internal", audience="technicians")
    publish(tenant_a, tech_a, "Jam draft", "paper jam draft", live=False)
    client = portal(end_user_a)
    page = client.get("/knowledge/", {"q": "paper JAM"}).content.decode()
    assert "1 article found" in page
    assert "Printer help" in page and "<mark>paper</mark> jam, open tray 2" in page and "… " in page
    assert "Jam runbook" not in page and "Jam draft" not in page
    partial = client.get("/knowledge/", {"q": "tray"}, HTTP_HX_REQUEST="true").content.decode()
    assert partial.startswith('<div id="portal-results"') and "<mark>tray</mark>" in partial
    assert "no article matches" in client.get("/knowledge/", {"q": "zebra"}).content.decode().lower()

    shown = client.get(f"/knowledge/{article.number}/").content.decode()
    assert "To fix a paper jam" in shown
    with tenant_context(tenant_a):
        assert Article.objects.get(pk=article.pk).view_count == 1
        hidden = Article.objects.get(published_version__title="Jam runbook")
    assert client.get(f"/knowledge/{hidden.number}/").status_code == 404


def test_portal_pages_ask_visitors_to_sign_in_and_keep_tenants_apart(
    tenant_a: Tenant, tenant_b: Tenant, tech_ab: User, end_user_a: User
) -> None:
    b_article = publish(tenant_b, tech_ab, "Globex VPN", "globex only")
    assert Client(HTTP_HOST="acme.localhost").get("/").status_code == 302
    assert Client(HTTP_HOST="acme.localhost").get("/knowledge/").status_code == 302
    client = portal(end_user_a)
    assert "Globex VPN" not in client.get("/knowledge/", {"q": "VPN"}).content.decode()
    with tenant_context(tenant_a):
        assert not Article.objects.filter(number=b_article.number).exists()
    assert client.get(f"/knowledge/{b_article.number}/").status_code == 404
    assert portal(end_user_a, "globex.localhost").get("/").status_code in (302, 403)


def test_home_and_search_queries_do_not_grow_with_articles(
    tenant_a: Tenant, tech_a: User, end_user_a: User
) -> None:
    publish(tenant_a, tech_a, "Wifi guide 0", "wifi setup")
    with tenant_context(tenant_a):
        incident_create(actor=actor_in(tenant_a, end_user_a, role="end_user"), short_description="one")
    client = portal(end_user_a)
    client.get("/")  # warm-up: the person is mirrored on the first request, the schema path cached
    client.get("/knowledge/")

    def count(path: str, **params: str) -> int:
        with CaptureQueriesContext(connection) as queries:
            assert client.get(path, params).status_code == 200
        return len(queries)

    one = (count("/"), count("/knowledge/", q="wifi"))
    for n in range(1, 30):
        publish(tenant_a, tech_a, f"Wifi guide {n}", f"wifi setup step {n}")
    with tenant_context(tenant_a):
        for n in range(10):
            incident_create(actor=actor_in(tenant_a, end_user_a, role="end_user"), short_description=f"i{n}")
    assert (count("/"), count("/knowledge/", q="wifi")) == one
