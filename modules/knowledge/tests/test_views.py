"""Console pages for knowledge, through the test client: list with filters, detail (text shown escaped,
versions with a diff, feedback, links, history, actions), create and edit forms, and what readers get."""

from __future__ import annotations

from collections.abc import Callable

from django.test import Client
from django_tenants.utils import tenant_context

from conftest import actor_in
from controlplane.accounts.models import User
from modules.incidents.services import incident_create
from modules.knowledge.models import Article, ArticleFeedback, ArticleVersion
from modules.knowledge.services import (
    article_create,
    article_edit,
    article_publish,
    article_submit_for_review,
)
from modules.records.models import ActivityEntry, RecordLink
from tenants.models import Tenant

URL = "/t/acme/knowledge/"


def new_article(tenant: Tenant, user: User, title: str, publish: bool = False, **fields: str) -> Article:
    with tenant_context(tenant):
        actor = actor_in(tenant, user)
        article = article_create(actor=actor, title=title, **fields)
        if publish:
            article_submit_for_review(actor=actor, article=article)
            article = article_publish(actor=actor, article=article)
        return article


def writes(tenant: Tenant) -> tuple[int, ...]:
    with tenant_context(tenant):
        return (
            Article.objects.count(),
            ArticleVersion.objects.count(),
            ArticleFeedback.objects.count(),
            ActivityEntry.objects.count(),
            RecordLink.objects.count(),
        )


def test_list_filters_and_htmx_partial(
    client_for: Callable[..., Client], tech_a: User, tenant_a: Tenant
) -> None:
    new_article(tenant_a, tech_a, "VPN setup", category="Network")
    new_article(tenant_a, tech_a, "Printer queue", publish=True, audience="portal")
    console = client_for(tech_a)
    page = console.get(URL)
    assert page.status_code == 200
    text = page.content.decode()
    assert "<td>VPN setup</td>" in text and "<td>Printer queue</td>" in text and "+ New article" in text
    only_published = console.get(f"{URL}?state=published").content.decode()
    assert "<td>Printer queue</td>" in only_published and "<td>VPN setup</td>" not in only_published
    searched = console.get(f"{URL}?q=vpn", HTTP_HX_REQUEST="true")
    assert b"<html" not in searched.content
    assert b"<td>VPN setup</td>" in searched.content and b"Printer queue" not in searched.content
    by_category = console.get(f"{URL}?category=network").content.decode()
    assert "<td>VPN setup</td>" in by_category and "Printer queue" not in by_category


def test_create_edit_publish_and_diff_in_the_console(
    client_for: Callable[..., Client], tech_a: User, tenant_a: Tenant
) -> None:
    console = client_for(tech_a)
    assert console.get(f"{URL}new/").status_code == 200
    created = console.post(
        f"{URL}new/",
        {"title": "VPN setup", "body": "step one\nstep two", "audience": "portal", "category": "Network"},
    )
    assert created.status_code == 302 and created["Location"] == f"{URL}KB0000001/"
    refused = console.post(f"{URL}new/", {"title": "   ", "audience": "portal"})
    assert refused.status_code == 200 and "This field is required." in refused.content.decode()

    assert console.post(f"{URL}KB0000001/actions/", {"action": "submit"}).status_code == 302
    conflict = console.post(f"{URL}KB0000001/actions/", {"action": "restore"})
    assert conflict.status_code == 409 and "cannot restore KB0000001" in conflict.content.decode()
    assert console.post(f"{URL}KB0000001/actions/", {"action": "publish"}).status_code == 302

    edit_page = console.get(f"{URL}KB0000001/edit/")
    assert (
        edit_page.status_code == 200
        and "Readers keep seeing the published version (v1)" in edit_page.content.decode()
    )
    edited = console.post(
        f"{URL}KB0000001/edit/",
        {
            "title": "VPN setup",
            "body": "step one\nstep 2 with MFA",
            "audience": "portal",
            "category": "Network",
            "change_note": "MFA",
        },
    )
    assert edited.status_code == 302
    with tenant_context(tenant_a):
        article = Article.objects.select_related("current_version", "published_version").get(
            number="KB0000001"
        )
        assert (article.state, article.current_version.number, article.published_version.number) == (  # type: ignore[union-attr]
            "draft",
            2,
            1,
        )

    detail = console.get(f"{URL}KB0000001/?old=1&new=2")
    assert detail.status_code == 200
    text = detail.content.decode()
    assert "Version 2 (working copy) · MFA" in text
    assert "-step two</del>" in text and "+step 2 with MFA</ins>" in text
    assert "article.published" in text and "article.edited" in text  # history
    old = console.get(f"{URL}KB0000001/?version=1").content.decode()
    assert "Version 1 (published)" in old and "step two" in old


def test_body_is_shown_escaped(client_for: Callable[..., Client], tech_a: User, tenant_a: Tenant) -> None:
    new_article(tenant_a, tech_a, "Script", body="<script>alert(1)</script> **bold**")
    text = client_for(tech_a).get(f"{URL}KB0000001/").content.decode()
    assert "&lt;script&gt;alert(1)&lt;/script&gt; **bold**" in text and "<script>alert(1)" not in text


def test_reader_sees_published_text_gives_feedback_and_never_sees_drafts(
    client_for: Callable[..., Client], tech_a: User, end_user_a: User, tenant_a: Tenant
) -> None:
    live = new_article(
        tenant_a, tech_a, "Reset your password", publish=True, audience="portal", body="Use the page."
    )
    with tenant_context(tenant_a):
        article_edit(
            actor=actor_in(tenant_a, tech_a), article=live, title="Secret new title", body="secret draft"
        )
    new_article(tenant_a, tech_a, "Portal draft", audience="portal")
    new_article(tenant_a, tech_a, "Internal runbook", publish=True)
    reader = client_for(end_user_a)

    listing = reader.get(URL).content.decode()
    assert "<td>Reset your password</td>" in listing
    assert "Portal draft" not in listing and "Internal runbook" not in listing and "Secret" not in listing
    assert "+ New article" not in listing
    page = reader.get(f"{URL}KB0000001/")
    text = page.content.decode()
    assert page.status_code == 200 and "Use the page." in text
    assert "secret" not in text.lower() and "History" not in text and "Versions" not in text
    assert reader.get(f"{URL}KB0000001/?version=2").status_code == 404
    assert reader.get(f"{URL}KB0000002/").status_code == 404
    assert reader.get(f"{URL}KB0000003/").status_code == 404
    assert reader.get(f"{URL}KB0000099/").status_code == 404

    before = writes(tenant_a)
    assert reader.get(f"{URL}KB0000001/edit/").status_code == 403
    assert reader.post(f"{URL}KB0000001/edit/", {"title": "x", "audience": "portal"}).status_code == 403
    assert reader.get(f"{URL}new/").status_code == 403
    assert reader.post(f"{URL}KB0000001/actions/", {"action": "retire"}).status_code == 403
    assert reader.post(f"{URL}KB0000002/feedback/", {"helpful": "yes"}).status_code == 404
    assert writes(tenant_a) == before

    assert reader.post(f"{URL}KB0000001/feedback/", {"helpful": "yes", "comment": "ok"}).status_code == 302
    assert reader.post(f"{URL}KB0000001/feedback/", {"helpful": "no"}).status_code == 302
    with tenant_context(tenant_a):
        article = Article.objects.get(number="KB0000001")
        assert (article.helpful_count, article.not_helpful_count, article.view_count) == (0, 1, 1)
        assert ArticleFeedback.objects.filter(article=article).count() == 1
    assert (
        "0 found it helpful, 1 did not. Your answer: no." in reader.get(f"{URL}KB0000001/").content.decode()
    )


def test_link_an_incident_from_the_console(
    client_for: Callable[..., Client], tech_a: User, tenant_a: Tenant
) -> None:
    new_article(tenant_a, tech_a, "VPN drops on hotel wifi")
    with tenant_context(tenant_a):
        incident = incident_create(actor=actor_in(tenant_a, tech_a), short_description="VPN drops")
    console = client_for(tech_a)
    linked = console.post(
        f"{URL}KB0000001/links/", {"record_type": "incident", "record_id": str(incident.pk)}
    )
    assert linked.status_code == 302
    text = console.get(f"{URL}KB0000001/").content.decode()
    # the shared "Linked records" panel lists it, linked to the incident's page
    assert (
        f'documents <a href="/t/acme/incidents/{incident.number}/"><strong>{incident.number}</strong></a>'
        in text
    )
    again = console.post(f"{URL}KB0000001/links/", {"record_type": "incident", "record_id": str(incident.pk)})
    assert again.status_code == 409
    with tenant_context(tenant_a):
        assert RecordLink.objects.count() == 1
