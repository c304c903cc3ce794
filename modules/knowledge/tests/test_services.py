"""Knowledge services and selectors, called directly inside a tenant: numbering and versions, editing a
published article, the state machine, who may do what, what readers see, feedback, links, views and the
search documents readers could find.

Every denial also checks that nothing was written.
"""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.postgres.search import SearchQuery
from django.db import IntegrityError, transaction
from django_tenants.utils import tenant_context

from conftest import actor_in
from controlplane.accounts.models import User
from controlplane.problems import InvalidInput, NotFound, PermissionDenied
from modules.incidents.services import incident_create
from modules.knowledge import selectors
from modules.knowledge.models import Article, ArticleFeedback, ArticleVersion
from modules.knowledge.services import (
    ArticleNotEditable,
    ArticleNotPublished,
    InvalidTransition,
    allowed_actions,
    article_create,
    article_edit,
    article_feedback_set,
    article_link,
    article_publish,
    article_reject,
    article_restore,
    article_retire,
    article_submit_for_review,
    article_transition,
    article_viewed,
)
from modules.records.actor import Actor
from modules.records.models import ActivityEntry, RecordLink, SearchDocument
from modules.records.selectors import link_list
from modules.records.services import LinkExists
from tenants.models import Tenant


def writes() -> tuple[int, ...]:
    """Rows a knowledge write may add (call inside the tenant): articles, versions, feedback, activity
    entries, links, search documents."""
    return (
        Article.objects.count(),
        ArticleVersion.objects.count(),
        ArticleFeedback.objects.count(),
        ActivityEntry.objects.count(),
        RecordLink.objects.count(),
        SearchDocument.objects.count(),
    )


def row(article: Article) -> dict[str, Any]:
    return dict(Article.objects.filter(pk=article.pk).values().get())


def live_portal(actor: Actor, title: str = "Reset your password", body: str = "Open the portal.") -> Article:
    """A portal article taken through review to published (version 1)."""
    article = article_create(actor=actor, title=title, body=body, audience="portal", category="Accounts")
    article_submit_for_review(actor=actor, article=article)
    return article_publish(actor=actor, article=article)


def found(word: str) -> list[tuple[str, str, str]]:
    """Search documents matching ``word`` (English full text): (number, visibility, state)."""
    return list(
        SearchDocument.objects.filter(document=SearchQuery(word, config="english"))
        .order_by("number")
        .values_list("number", "visibility", "state")
    )


def test_create_numbers_the_article_and_starts_version_one_as_a_draft(tenant_a: Tenant, tech_a: User) -> None:
    with tenant_context(tenant_a):
        actor = actor_in(tenant_a, tech_a)
        first = article_create(
            actor=actor, title="  VPN setup ", body="Install the client.", category="Network"
        )
        second = article_create(actor=actor, title="Printer queue", audience="portal")
        first = Article.objects.get(pk=first.pk)
        assert (first.number, second.number) == ("KB0000001", "KB0000002")
        assert (first.state, first.audience, first.category, first.author) == (
            "draft",
            "technicians",
            "Network",
            actor.person,
        )
        version = first.current_version
        assert version is not None
        assert (version.number, version.title, version.body, version.author) == (
            1,
            "VPN setup",
            "Install the client.",
            actor.person,
        )
        assert first.published_version is None and first.published_at is None
        entry = ActivityEntry.objects.get(record_id=first.pk)
        assert entry.verb == "article.created"
        assert entry.changes == {
            "title": [None, "VPN setup"],
            "category": [None, "Network"],
            "audience": [None, "technicians"],
            "state": [None, "draft"],
            "version": [None, 1],
        }
        assert found("vpn") == [("KB0000001", "technicians", "draft")]


def test_create_with_bad_input_names_the_field_and_writes_nothing(tenant_a: Tenant, tech_a: User) -> None:
    with tenant_context(tenant_a):
        actor = actor_in(tenant_a, tech_a)
        before = writes()
        with pytest.raises(InvalidInput) as blank:
            article_create(actor=actor, title="   ")
        with pytest.raises(InvalidInput) as audience:
            article_create(actor=actor, title="x", audience="everyone")
        with pytest.raises(InvalidInput) as long_title:
            article_create(actor=actor, title="x" * 201)
        assert [e["field"] for e in blank.value.extra["errors"]] == ["title"]
        assert [e["field"] for e in audience.value.extra["errors"]] == ["audience"]
        assert [e["field"] for e in long_title.value.extra["errors"]] == ["title"]
        assert writes() == before


def test_each_text_edit_adds_the_next_version_of_that_article(tenant_a: Tenant, tech_a: User) -> None:
    with tenant_context(tenant_a):
        actor = actor_in(tenant_a, tech_a)
        vpn = article_create(actor=actor, title="VPN", body="one")
        mail = article_create(actor=actor, title="Mail", body="one")
        article_edit(actor=actor, article=vpn, body="two", change_note="step 2 added")
        article_edit(actor=actor, article=mail, title="Mail on phones")
        article_edit(actor=actor, article=vpn, title="VPN on Windows", body="three")
        assert list(
            ArticleVersion.objects.filter(article=vpn).values_list("number", "title", "body", "change_note")
        ) == [(1, "VPN", "one", ""), (2, "VPN", "two", "step 2 added"), (3, "VPN on Windows", "three", "")]
        assert list(ArticleVersion.objects.filter(article=mail).values_list("number", "title")) == [
            (1, "Mail"),
            (2, "Mail on phones"),
        ]
        vpn.refresh_from_db()
        assert vpn.current_version is not None and vpn.current_version.number == 3
        assert ActivityEntry.objects.filter(record_id=vpn.pk, verb="article.edited").count() == 2
        last = ActivityEntry.objects.filter(record_id=vpn.pk).order_by("at", "id").last()
        assert last is not None
        assert last.changes == {
            "version": [2, 3],
            "title": ["VPN", "VPN on Windows"],
            "body": ["(changed)", "(changed)"],
        }

        # Category or audience alone: no new version; nothing changed: nothing written.
        article_edit(actor=actor, article=vpn, category="Network")
        assert ArticleVersion.objects.filter(article=vpn).count() == 3
        before = writes()
        article_edit(actor=actor, article=vpn, title="VPN on Windows", category="Network")
        assert writes() == before
        # The database refuses two versions with one number.
        with pytest.raises(IntegrityError), transaction.atomic():
            ArticleVersion.objects.create(article=vpn, number=3, title="dup")


def test_edit_refuses_unknown_and_null_fields_and_retired_articles(tenant_a: Tenant, tech_a: User) -> None:
    with tenant_context(tenant_a):
        actor = actor_in(tenant_a, tech_a)
        article = article_create(actor=actor, title="VPN")
        before = writes()
        with pytest.raises(InvalidInput) as bad:
            article_edit(actor=actor, article=article, title=None, state="published")
        assert sorted(e["field"] for e in bad.value.extra["errors"]) == ["state", "title"]
        live = live_portal(actor)
        article_retire(actor=actor, article=live)
        before = writes()
        with pytest.raises(ArticleNotEditable):
            article_edit(actor=actor, article=live, body="new")
        assert writes() == before


def test_editing_a_published_article_keeps_readers_on_the_published_version_until_the_next_publish(
    tenant_a: Tenant, tech_a: User, end_user_a: User
) -> None:
    with tenant_context(tenant_a):
        tech = actor_in(tenant_a, tech_a)
        reader = actor_in(tenant_a, end_user_a, "end_user")
        article = live_portal(tech, title="Reset your password", body="Use the self-service page.")
        article = article_edit(
            actor=tech, article=article, title="Reset your password (new)", body="Call zanzibar first."
        )
        assert (article.state, article.current_version.number, article.published_version.number) == (  # type: ignore[union-attr]
            "draft",
            2,
            1,
        )
        seen = selectors.article_get(actor=reader, article_id=article.pk)
        shown = selectors.article_version_get(actor=reader, article=seen)
        assert (shown.number, shown.title, shown.body) == (
            1,
            "Reset your password",
            "Use the self-service page.",
        )
        with pytest.raises(NotFound):
            selectors.article_version_get(actor=reader, article=seen, number=2)
        assert [v.number for v in selectors.article_version_list(actor=reader, article=seen)] == [1]
        listed = selectors.article_list(actor=reader).get()
        assert (listed.title, listed.shown_state) == ("Reset your password", "published")  # type: ignore[attr-defined]
        assert selectors.article_list(actor=reader, q="zanzibar").count() == 0
        # The technician works on the draft, which search finds for nobody: the document is the published text.
        assert selectors.article_version_get(actor=tech, article=article).number == 2
        assert found("zanzibar") == []
        assert found("self-service") == [("KB0000001", "portal", "published")]

        article_submit_for_review(actor=tech, article=article)
        shown = selectors.article_version_get(
            actor=reader, article=selectors.article_get(actor=reader, article_id=article.pk)
        )
        assert shown.number == 1  # still under review
        article_publish(actor=tech, article=article)
        seen = selectors.article_get(actor=reader, article_id=article.pk)
        shown = selectors.article_version_get(actor=reader, article=seen)
        assert (shown.number, shown.title) == (2, "Reset your password (new)")
        assert found("zanzibar") == [("KB0000001", "portal", "published")]
        assert found("self-service") == []


def test_allowed_transitions_walk_the_workflow(tenant_a: Tenant, tech_a: User, admin: User) -> None:
    with tenant_context(tenant_a):
        tech = actor_in(tenant_a, tech_a)
        article = article_create(actor=tech, title="VPN", audience="portal")
        assert allowed_actions(actor=tech, article=article) == ["submit"]
        article = article_submit_for_review(actor=tech, article=article)
        assert (article.state, allowed_actions(actor=tech, article=article)) == (
            "review",
            ["publish", "reject"],
        )
        article = article_reject(actor=tech, article=article, note="add screenshots")
        assert article.state == "draft" and article.published_version is None
        rejected = ActivityEntry.objects.filter(record_id=article.pk, verb="article.rejected").get()
        assert rejected.changes == {"state": ["review", "draft"], "note": [None, "add screenshots"]}
        article_submit_for_review(actor=tech, article=article)
        article = article_publish(actor=tech, article=article)
        assert article.state == "published" and article.published_version == article.current_version
        assert article.published_at is not None
        assert allowed_actions(actor=tech, article=article) == ["retire"]
        article = article_retire(actor=tech, article=article)
        assert (article.state, article.published_version, article.retired_at is not None) == (
            "retired",
            None,
            True,
        )
        assert found("vpn") == [("KB0000001", "technicians", "retired")]
        assert allowed_actions(actor=tech, article=article) == ["restore"]
        article = article_restore(actor=tech, article=article)
        assert (article.state, article.published_version, article.retired_at) == ("draft", None, None)
        # An admin may publish a draft without review; a plain technician may not.
        boss = actor_in(tenant_a, admin, "admin")
        assert allowed_actions(actor=boss, article=article) == ["submit", "publish"]
        assert allowed_actions(actor=tech, article=article) == ["submit"]
        article = article_publish(actor=boss, article=article)
        assert article.state == "published"
        # A live article being revised may still be withdrawn.
        article = article_edit(actor=tech, article=article, body="new text")
        assert allowed_actions(actor=tech, article=article) == ["submit", "retire"]
        article = article_retire(actor=tech, article=article)
        assert (article.state, article.published_version) == ("retired", None)
        verbs = list(ActivityEntry.objects.filter(record_id=article.pk).values_list("verb", flat=True))
        assert verbs == [
            "article.created",
            "article.submitted",
            "article.rejected",
            "article.submitted",
            "article.published",
            "article.retired",
            "article.restored",
            "article.published",
            "article.edited",
            "article.retired",
        ]


REFUSED = [
    ("draft", "publish"),  # a plain technician must go through review
    ("draft", "reject"),
    ("draft", "retire"),  # never published
    ("draft", "restore"),
    ("review", "submit"),
    ("review", "retire"),
    ("review", "restore"),
    ("published", "submit"),
    ("published", "publish"),
    ("published", "reject"),
    ("published", "restore"),
    ("retired", "submit"),
    ("retired", "publish"),
    ("retired", "reject"),
    ("retired", "retire"),
]


@pytest.mark.parametrize(("state", "action"), REFUSED)
def test_refused_transitions_are_conflicts_and_write_nothing(
    tenant_a: Tenant, tech_a: User, admin: User, state: str, action: str
) -> None:
    with tenant_context(tenant_a):
        tech = actor_in(tenant_a, tech_a)
        article = article_create(actor=tech, title="VPN")
        path = {
            "draft": [],
            "review": ["submit"],
            "published": ["submit", "publish"],
            "retired": ["submit", "publish", "retire"],
        }
        for step in path[state]:
            article = article_transition(actor=tech, article=article, action=step)
        before, stored = writes(), row(article)
        with pytest.raises(InvalidTransition) as refused:
            article_transition(actor=tech, article=article, action=action)
        assert refused.value.status == 409
        assert refused.value.extra["current_state"] == state
        assert refused.value.extra["allowed_actions"] == allowed_actions(actor=tech, article=article)
        assert writes() == before and row(article) == stored


def test_unknown_action_is_invalid_input(tenant_a: Tenant, tech_a: User) -> None:
    with tenant_context(tenant_a):
        tech = actor_in(tenant_a, tech_a)
        article = article_create(actor=tech, title="VPN")
        with pytest.raises(InvalidInput) as bad:
            article_transition(actor=tech, article=article, action="approve")
        assert bad.value.extra["errors"] == [{"field": "action", "message": "unknown action"}]


def test_who_may_write_review_and_publish(
    tenant_a: Tenant, tech_a: User, client_admin_a: User, end_user_a: User, approver_a: User
) -> None:
    with tenant_context(tenant_a):
        tech = actor_in(tenant_a, tech_a)
        client_admin = actor_in(tenant_a, client_admin_a, "client_admin")
        end_user = actor_in(tenant_a, end_user_a, "end_user")
        approver = actor_in(tenant_a, approver_a, "approver")
        portal = article_create(actor=tech, title="Portal how-to", audience="portal")
        internal = article_create(actor=tech, title="Firewall runbook")
        portal = article_submit_for_review(actor=tech, article=portal)
        internal = article_submit_for_review(actor=tech, article=internal)

        before, stored = writes(), row(portal)
        for actor in (client_admin, end_user, approver):
            with pytest.raises(PermissionDenied):
                article_create(actor=actor, title="mine")
            with pytest.raises(PermissionDenied):
                article_edit(actor=actor, article=portal, body="changed")
            for action in ("submit", "retire", "restore"):
                with pytest.raises(PermissionDenied):
                    article_transition(actor=actor, article=portal, action=action)
        for actor in (end_user, approver):
            for action in ("publish", "reject"):
                with pytest.raises(PermissionDenied):
                    article_transition(actor=actor, article=portal, action=action)
        with pytest.raises(PermissionDenied):
            article_publish(actor=client_admin, article=internal)
        assert writes() == before and row(portal) == stored

        # The client admin reviews portal articles: reject, then publish.
        assert allowed_actions(actor=client_admin, article=portal) == ["publish", "reject"]
        portal = article_reject(actor=client_admin, article=portal, note="wrong screenshots")
        assert allowed_actions(actor=client_admin, article=portal) == ["publish"]  # an admin may skip review
        portal = article_submit_for_review(actor=tech, article=portal)
        published = article_publish(actor=client_admin, article=portal)
        assert published.state == "published"
        entry = ActivityEntry.objects.filter(record_id=portal.pk, verb="article.published").get()
        assert (entry.actor_user_id, entry.changes["published_version"]) == (client_admin_a.pk, [None, 1])


def test_readers_see_only_live_portal_articles_and_the_client_admin_sees_portal_drafts(
    tenant_a: Tenant, tech_a: User, client_admin_a: User, end_user_a: User, approver_a: User
) -> None:
    with tenant_context(tenant_a):
        tech = actor_in(tenant_a, tech_a)
        live = live_portal(tech, title="Reset your password")
        draft = article_create(actor=tech, title="Portal draft", audience="portal")
        review = article_create(actor=tech, title="Portal under review", audience="portal")
        article_submit_for_review(actor=tech, article=review)
        internal = article_create(actor=tech, title="Internal runbook")
        article_submit_for_review(actor=tech, article=internal)
        article_publish(actor=tech, article=internal)
        retired = live_portal(tech, title="Old VPN guide")
        article_retire(actor=tech, article=retired)

        all_ids = {a.pk for a in (live, draft, review, internal, retired)}
        assert {a.pk for a in selectors.article_list(actor=tech)} == all_ids
        client_admin = actor_in(tenant_a, client_admin_a, "client_admin")
        assert {a.pk for a in selectors.article_list(actor=client_admin)} == {
            live.pk,
            draft.pk,
            review.pk,
            retired.pk,
        }
        for role, user in (("end_user", end_user_a), ("approver", approver_a)):
            reader = actor_in(tenant_a, user, role)
            assert [a.pk for a in selectors.article_list(actor=reader)] == [live.pk]
            assert [a.pk for a in selectors.article_list(actor=reader, state=["draft"])] == []
            assert [a.pk for a in selectors.article_list(actor=reader, state=["published"])] == [live.pk]
            assert selectors.article_get(actor=reader, article_id=live.pk).pk == live.pk
            for hidden in (draft, review, internal, retired):
                with pytest.raises(NotFound) as refused:
                    selectors.article_get(actor=reader, article_id=hidden.pk)
                assert refused.value.detail == "no such article"
            with pytest.raises(NotFound) as missing:
                selectors.article_get(actor=reader, article_id="not-a-uuid")
            assert missing.value.detail == "no such article"
            with pytest.raises(PermissionDenied):
                selectors.article_history(actor=reader, article=live)
        with pytest.raises(NotFound):
            selectors.article_get(actor=client_admin, article_id=internal.pk)
        # Filters of editors: state, audience, category, q (number or words of the working copy).
        assert {a.pk for a in selectors.article_list(actor=tech, state=["review"])} == {review.pk}
        assert {a.pk for a in selectors.article_list(actor=tech, audience=["technicians"])} == {internal.pk}
        assert {a.pk for a in selectors.article_list(actor=tech, category="accounts")} == {
            live.pk,
            retired.pk,
        }
        assert {a.pk for a in selectors.article_list(actor=tech, q="runbook")} == {internal.pk}
        assert {a.pk for a in selectors.article_list(actor=tech, q=draft.number.lower())} == {draft.pk}
        # Search documents: only the live portal article is open to the portal.
        assert sorted(SearchDocument.objects.filter(visibility="portal").values_list("title", flat=True)) == [
            "Reset your password"
        ]


def test_feedback_is_replaced_not_duplicated_and_counts_stay_exact(
    tenant_a: Tenant, tech_a: User, end_user_a: User, carol: User
) -> None:
    with tenant_context(tenant_a):
        tech = actor_in(tenant_a, tech_a)
        alice = actor_in(tenant_a, end_user_a, "end_user")
        other = actor_in(tenant_a, carol, "end_user")
        article = live_portal(tech)

        def state() -> tuple[int, int, int, int, int]:
            fresh = Article.objects.get(pk=article.pk)
            summary = selectors.article_feedback_summary(actor=tech, article=fresh)
            assert (summary.helpful, summary.not_helpful) == (fresh.helpful_count, fresh.not_helpful_count)
            return (
                fresh.helpful_count,
                fresh.not_helpful_count,
                ArticleFeedback.objects.filter(article=article).count(),
                summary.total,
                len(summary.comments),
            )

        article_feedback_set(actor=alice, article=article, helpful=True)
        assert state() == (1, 0, 1, 1, 0)
        article_feedback_set(actor=alice, article=article, helpful=True, comment="clear")
        assert state() == (1, 0, 1, 1, 1)
        article_feedback_set(actor=alice, article=article, helpful=False, comment="step 3 fails")
        assert state() == (0, 1, 1, 1, 1)
        article_feedback_set(actor=other, article=article, helpful=True)
        assert state() == (1, 1, 2, 2, 1)
        mine = selectors.article_feedback_summary(actor=alice, article=article)
        assert mine.mine is not None and (mine.mine.helpful, mine.mine.comment, mine.mine.version.number) == (
            False,
            "step 3 fails",
            1,
        )
        assert mine.comments == []  # readers see counts and their own verdict only
        verbs = ActivityEntry.objects.filter(record_id=article.pk, verb="article.feedback")
        assert [e.changes["helpful"] for e in verbs] == [
            [None, True],
            [True, True],
            [True, False],
            [None, True],
        ]

        # Feedback follows the published version: a new publish ties new verdicts to it.
        article_edit(actor=tech, article=article, body="better")
        article_submit_for_review(actor=tech, article=article)
        article_publish(actor=tech, article=article)
        article_feedback_set(actor=other, article=article, helpful=True)
        assert ArticleFeedback.objects.get(person=other.person).version.number == 2
        assert state() == (1, 1, 2, 2, 1)


def test_feedback_only_on_readable_published_articles(
    tenant_a: Tenant, tech_a: User, end_user_a: User
) -> None:
    with tenant_context(tenant_a):
        tech = actor_in(tenant_a, tech_a)
        alice = actor_in(tenant_a, end_user_a, "end_user")
        draft_portal = article_create(actor=tech, title="Draft", audience="portal")
        internal = article_create(actor=tech, title="Internal")
        article_submit_for_review(actor=tech, article=internal)
        article_publish(actor=tech, article=internal)
        before = writes()
        for hidden in (draft_portal, internal):
            with pytest.raises(NotFound):
                article_feedback_set(actor=alice, article=hidden, helpful=True)
            with pytest.raises(NotFound):
                article_viewed(actor=alice, article=hidden)
        with pytest.raises(ArticleNotPublished):
            article_feedback_set(actor=tech, article=draft_portal, helpful=True)
        assert writes() == before
        assert Article.objects.get(pk=internal.pk).view_count == 0


def test_views_count_reads_of_the_published_text(tenant_a: Tenant, tech_a: User, end_user_a: User) -> None:
    with tenant_context(tenant_a):
        tech = actor_in(tenant_a, tech_a)
        alice = actor_in(tenant_a, end_user_a, "end_user")
        article = live_portal(tech)
        entries = ActivityEntry.objects.count()
        updated = Article.objects.get(pk=article.pk).updated_at
        assert article_viewed(actor=alice, article=article) == 1
        assert article_viewed(actor=tech, article=article) == 2
        fresh = Article.objects.get(pk=article.pk)
        assert (fresh.view_count, fresh.updated_at) == (2, updated)
        assert ActivityEntry.objects.count() == entries
        draft = article_create(actor=tech, title="Draft")
        assert article_viewed(actor=tech, article=draft) == 0  # no published text: nothing to count


def test_article_documents_an_incident_through_the_shared_links(
    tenant_a: Tenant, tenant_b: Tenant, tech_a: User, tech_ab: User, end_user_a: User
) -> None:
    with tenant_context(tenant_b):
        incident_b = incident_create(actor=actor_in(tenant_b, tech_ab), short_description="B's outage")
    with tenant_context(tenant_a):
        tech = actor_in(tenant_a, tech_a)
        incident = incident_create(actor=tech, short_description="VPN drops")
        article = live_portal(tech, title="VPN drops on hotel wifi")
        link = article_link(actor=tech, article=article, record_type="incident", record_id=incident.pk)
        assert (link.source_type, link.source_id, link.kind, link.target_type, link.target_id) == (
            "article",
            article.pk,
            "documents",
            "incident",
            incident.pk,
        )
        assert [x.pk for x in link_list(actor=tech, record_id=incident.pk)] == [link.pk]
        seen = selectors.article_link_list(actor=tech, article=article)
        assert [(i.reading, i.other_type, i.other_id, i.other_number, i.other_path) for i in seen] == [
            ("documents", "incident", incident.pk, incident.number, f"incidents/{incident.number}/")
        ]
        for record_id in (article.pk, incident.pk):
            entry = ActivityEntry.objects.get(record_id=record_id, verb="link.added")
            assert entry.changes["kind"] == "documents"

        before = writes()
        with pytest.raises(LinkExists):
            article_link(actor=tech, article=article, record_type="incident", record_id=incident.pk)
        with pytest.raises(NotFound):  # another tenant's incident is a missing id here
            article_link(actor=tech, article=article, record_type="incident", record_id=incident_b.pk)
        with pytest.raises(InvalidInput):
            article_link(actor=tech, article=article, record_type="spaceship", record_id=incident.pk)
        alice = actor_in(tenant_a, end_user_a, "end_user")
        with pytest.raises(PermissionDenied):
            article_link(actor=alice, article=article, record_type="incident", record_id=incident.pk)
        assert selectors.article_link_list(actor=alice, article=article) == []
        assert writes() == before


def test_record_kind_article_is_registered_with_the_visibility_rule(
    tenant_a: Tenant, tech_a: User, end_user_a: User
) -> None:
    from modules.records.registry import record_get

    with tenant_context(tenant_a):
        tech = actor_in(tenant_a, tech_a)
        alice = actor_in(tenant_a, end_user_a, "end_user")
        draft = article_create(actor=tech, title="Draft", audience="portal")
        live = live_portal(tech)
        assert record_get(actor=tech, record_type="article", record_id=draft.pk).pk == draft.pk
        assert record_get(actor=alice, record_type="article", record_id=live.pk).pk == live.pk
        with pytest.raises(NotFound):
            record_get(actor=alice, record_type="article", record_id=draft.pk)


def test_version_diff_between_two_versions(tenant_a: Tenant, tech_a: User, end_user_a: User) -> None:
    with tenant_context(tenant_a):
        tech = actor_in(tenant_a, tech_a)
        article = article_create(actor=tech, title="VPN", body="step one\nstep two\n")
        article_edit(actor=tech, article=article, body="step one\nstep 2, with MFA\n")
        assert selectors.article_version_diff(actor=tech, article=article, old=1, new=2) == [
            "--- v1",
            "+++ v2",
            "@@ -1,4 +1,4 @@",
            " # VPN",
            " ",
            " step one",
            "-step two",
            "+step 2, with MFA",
        ]
        with pytest.raises(NotFound):
            selectors.article_version_diff(actor=tech, article=article, old=1, new=9)
        with pytest.raises(PermissionDenied):
            selectors.article_version_diff(
                actor=actor_in(tenant_a, end_user_a, "end_user"), article=article, old=1, new=2
            )
