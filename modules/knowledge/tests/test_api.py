"""The knowledge REST API through the test client: /api/v1/t/<tenant>/knowledge/articles/..., response
shapes, problem+json errors (RFC 9457), what readers get, tenant isolation. Every refused request also
checks that nothing was written in the tenant it aimed at."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

from django.test import Client
from django_tenants.utils import tenant_context

from conftest import actor_in
from controlplane.accounts.models import User
from modules.incidents.services import incident_create
from modules.knowledge.models import Article, ArticleFeedback, ArticleVersion
from modules.records.models import ActivityEntry, RecordLink
from tenants.models import Tenant

BASE = "/api/v1/t/acme/knowledge/articles"
PROBLEM = "application/problem+json"
ApiFor = Callable[[User], Client]
ARTICLE_KEYS = {
    "id",
    "number",
    "category",
    "audience",
    "state",
    "version",
    "title",
    "body",
    "current_version",
    "published_version",
    "author",
    "published_at",
    "retired_at",
    "view_count",
    "helpful_count",
    "not_helpful_count",
    "created_at",
    "updated_at",
    "allowed_actions",
}


def post(api: Client, url: str, body: Any) -> Any:
    return api.post(url, body, content_type="application/json")


def create(api: Client, title: str, **fields: Any) -> dict[str, Any]:
    response = post(api, BASE, {"title": title, **fields})
    assert response.status_code == 201, response.content
    body: dict[str, Any] = response.json()
    return body


def act(api: Client, article_id: str, action: str, note: str = "") -> Any:
    return post(api, f"{BASE}/{article_id}/actions", {"action": action, "note": note})


def publish(api: Client, article_id: str) -> dict[str, Any]:
    assert act(api, article_id, "submit").status_code == 200
    response = act(api, article_id, "publish")
    assert response.status_code == 200, response.content
    body: dict[str, Any] = response.json()
    return body


def writes(tenant: Tenant) -> tuple[int, ...]:
    with tenant_context(tenant):
        return (
            Article.objects.count(),
            ArticleVersion.objects.count(),
            ArticleFeedback.objects.count(),
            ActivityEntry.objects.count(),
            RecordLink.objects.count(),
        )


def assert_problem(response: Any, status: int, slug: str) -> dict[str, Any]:
    assert response.status_code == status, response.content
    assert response["Content-Type"] == PROBLEM
    body: dict[str, Any] = response.json()
    assert (body["type"], body["status"]) == (f"/problems/{slug}", status)
    return body


def same_as_missing(api: Client, url_of: Callable[[str], str], hidden_id: str) -> None:
    """The answer for ``hidden_id`` cannot be told apart from the answer for an id that never existed."""
    response, missing = api.get(url_of(hidden_id)), api.get(url_of(str(uuid.uuid4())))
    assert response.status_code == missing.status_code == 404
    assert response["Content-Type"] == missing["Content-Type"] == PROBLEM
    strip = {"instance"}
    assert {k: v for k, v in response.json().items() if k not in strip} == {
        k: v for k, v in missing.json().items() if k not in strip
    }


def test_create_get_edit_and_list_shapes(api_for: ApiFor, tech_a: User, tenant_a: Tenant) -> None:
    api = api_for(tech_a)
    created = create(
        api, "VPN setup", body="Install <b>the</b> client.", category="Network", change_note="first"
    )
    assert set(created) == ARTICLE_KEYS
    assert (created["number"], created["state"], created["audience"], created["version"]) == (
        "KB0000001",
        "draft",
        "technicians",
        1,
    )
    assert (created["title"], created["body"], created["category"]) == (
        "VPN setup",
        "Install <b>the</b> client.",
        "Network",
    )
    assert (created["current_version"], created["published_version"], created["published_at"]) == (
        1,
        None,
        None,
    )
    assert created["author"]["display_name"] == tech_a.full_name
    assert created["allowed_actions"] == ["submit"]
    assert (created["view_count"], created["helpful_count"], created["not_helpful_count"]) == (0, 0, 0)

    fetched = api.get(f"{BASE}/{created['id']}")
    assert fetched.status_code == 200 and fetched.json() == created  # a draft read counts no view

    patched = api.patch(
        f"{BASE}/{created['id']}",
        {"body": "Install the client, then sign in.", "change_note": "sign in"},
        content_type="application/json",
    )
    assert patched.status_code == 200
    body = patched.json()
    assert (body["version"], body["current_version"], body["body"]) == (
        2,
        2,
        "Install the client, then sign in.",
    )
    v1 = api.get(f"{BASE}/{created['id']}?version=1").json()
    assert (v1["version"], v1["body"]) == (1, "Install <b>the</b> client.")
    assert_problem(api.get(f"{BASE}/{created['id']}?version=7"), 404, "not-found")

    versions = api.get(f"{BASE}/{created['id']}/versions")
    assert versions.status_code == 200
    assert [(v["number"], v["change_note"]) for v in versions.json()] == [(1, "first"), (2, "sign in")]
    assert set(versions.json()[0]) == {"number", "title", "body", "change_note", "author", "created_at"}

    second = create(api, "Printer queue", audience="portal")
    listing = api.get(BASE)
    assert listing.status_code == 200
    page = listing.json()
    assert [a["id"] for a in page["results"]] == [second["id"], created["id"]]  # recently updated first
    assert set(page["results"][0]) == {
        "id",
        "number",
        "title",
        "category",
        "audience",
        "state",
        "published_at",
        "updated_at",
        "view_count",
        "helpful_count",
        "not_helpful_count",
    }
    assert [a["number"] for a in api.get(f"{BASE}?audience=portal").json()["results"]] == ["KB0000002"]
    assert [a["number"] for a in api.get(f"{BASE}?q=sign%20in").json()["results"]] == ["KB0000001"]
    assert [a["number"] for a in api.get(f"{BASE}?category=network").json()["results"]] == ["KB0000001"]
    assert [a["number"] for a in api.get(f"{BASE}?ordering=number").json()["results"]] == [
        "KB0000001",
        "KB0000002",
    ]

    history = api.get(f"{BASE}/{created['id']}/history")
    assert history.status_code == 200
    assert [(e["verb"], e["source"]) for e in history.json()] == [
        ("article.created", "api"),
        ("article.edited", "api"),
    ]


def test_bad_input_is_a_422_naming_the_field_and_writes_nothing(
    api_for: ApiFor, tech_a: User, tenant_a: Tenant
) -> None:
    api = api_for(tech_a)
    article = create(api, "VPN")
    before = writes(tenant_a)
    blank = assert_problem(post(api, BASE, {"title": "   "}), 422, "invalid-input")
    assert [e["field"] for e in blank["errors"]] == ["title"]
    audience = assert_problem(post(api, BASE, {"title": "x", "audience": "all"}), 422, "invalid-input")
    assert [e["field"] for e in audience["errors"]] == ["payload.audience"]
    null = api.patch(f"{BASE}/{article['id']}", {"title": None}, content_type="application/json")
    assert [e["field"] for e in assert_problem(null, 422, "invalid-input")["errors"]] == ["title"]
    unknown = assert_problem(act(api, article["id"], "approve"), 422, "invalid-input")
    assert [e["field"] for e in unknown["errors"]] == ["payload.action"]
    assert writes(tenant_a) == before


def test_refused_transition_is_a_409_problem_and_writes_nothing(
    api_for: ApiFor, tech_a: User, tenant_a: Tenant
) -> None:
    api = api_for(tech_a)
    article = create(api, "VPN")
    before = writes(tenant_a)
    refused = assert_problem(act(api, article["id"], "publish"), 409, "invalid-transition")
    assert (refused["current_state"], refused["allowed_actions"]) == ("draft", ["submit"])
    assert "only admins may publish without review" in refused["detail"]
    assert_problem(act(api, article["id"], "retire"), 409, "invalid-transition")
    assert writes(tenant_a) == before
    published = publish(api, article["id"])
    assert (published["state"], published["published_version"], published["allowed_actions"]) == (
        "published",
        1,
        ["retire"],
    )
    retired = act(api, article["id"], "retire").json()
    assert (retired["state"], retired["published_version"]) == ("retired", None)
    assert_problem(
        api.patch(f"{BASE}/{article['id']}", {"body": "x"}, content_type="application/json"),
        409,
        "article-not-editable",
    )
    assert act(api, article["id"], "restore").json()["state"] == "draft"


def test_readers_get_only_the_published_text_of_portal_articles(
    api_for: ApiFor, tech_a: User, end_user_a: User, tenant_a: Tenant
) -> None:
    tech, reader = api_for(tech_a), api_for(end_user_a)
    live = create(tech, "Reset your password", body="Use the self-service page.", audience="portal")
    publish(tech, live["id"])
    tech.patch(
        f"{BASE}/{live['id']}",
        {"title": "Draft title", "body": "secret draft"},
        content_type="application/json",
    )
    draft = create(tech, "Portal draft", audience="portal")
    internal = create(tech, "Internal runbook")
    publish(tech, internal["id"])

    got = reader.get(f"{BASE}/{live['id']}")
    assert got.status_code == 200
    body = got.json()
    assert (body["state"], body["version"], body["title"], body["body"]) == (
        "published",
        1,
        "Reset your password",
        "Use the self-service page.",
    )
    assert (body["current_version"], body["published_version"], body["allowed_actions"]) == (None, 1, [])
    assert body["view_count"] == 1
    assert reader.get(f"{BASE}/{live['id']}").json()["view_count"] == 2
    listing = reader.get(BASE).json()["results"]
    assert [(a["id"], a["title"], a["state"]) for a in listing] == [
        (live["id"], "Reset your password", "published")
    ]
    assert reader.get(f"{BASE}?q=secret").json()["results"] == []
    versions = reader.get(f"{BASE}/{live['id']}/versions").json()
    assert [(v["number"], v["title"]) for v in versions] == [(1, "Reset your password")]
    draft_version, no_version = (
        reader.get(f"{BASE}/{live['id']}?version=2"),
        reader.get(f"{BASE}/{live['id']}?version=99"),
    )
    assert assert_problem(draft_version, 404, "not-found")["detail"] == "no such article version"
    assert {k: v for k, v in draft_version.json().items()} == {k: v for k, v in no_version.json().items()}
    assert_problem(reader.get(f"{BASE}/{live['id']}/history"), 403, "forbidden")
    assert_problem(reader.get(f"{BASE}/{live['id']}/links"), 403, "forbidden")

    for hidden in (draft["id"], internal["id"]):
        same_as_missing(reader, lambda i: f"{BASE}/{i}", hidden)
        same_as_missing(reader, lambda i: f"{BASE}/{i}/versions", hidden)
        same_as_missing(reader, lambda i: f"{BASE}/{i}/feedback", hidden)


def test_readers_are_refused_writes_and_nothing_is_written(
    api_for: ApiFor, tech_a: User, end_user_a: User, tenant_a: Tenant
) -> None:
    tech, reader = api_for(tech_a), api_for(end_user_a)
    incident_id = str(uuid.uuid4())
    live = create(tech, "Reset your password", audience="portal")
    publish(tech, live["id"])
    draft = create(tech, "Portal draft", audience="portal")
    before = writes(tenant_a)
    assert_problem(post(reader, BASE, {"title": "mine"}), 403, "forbidden")
    assert_problem(
        reader.patch(f"{BASE}/{live['id']}", {"body": "x"}, content_type="application/json"), 403, "forbidden"
    )
    for action in ("submit", "publish", "reject", "retire", "restore"):
        assert_problem(act(reader, live["id"], action), 403, "forbidden")
    assert_problem(
        post(reader, f"{BASE}/{live['id']}/links", {"record_type": "incident", "record_id": incident_id}),
        403,
        "forbidden",
    )
    assert_problem(act(reader, draft["id"], "publish"), 404, "not-found")
    assert_problem(post(reader, f"{BASE}/{draft['id']}/feedback", {"helpful": True}), 404, "not-found")
    assert writes(tenant_a) == before


def test_client_admin_publishes_portal_articles_only(
    api_for: ApiFor, tech_a: User, client_admin_a: User, tenant_a: Tenant
) -> None:
    tech, client_admin = api_for(tech_a), api_for(client_admin_a)
    portal = create(tech, "Portal how-to", audience="portal")
    internal = create(tech, "Internal runbook")
    act(tech, portal["id"], "submit")
    act(tech, internal["id"], "submit")
    seen = client_admin.get(f"{BASE}/{portal['id']}").json()
    assert (seen["state"], seen["current_version"], seen["allowed_actions"]) == (
        "review",
        1,
        ["publish", "reject"],
    )
    before = writes(tenant_a)
    assert_problem(act(client_admin, internal["id"], "publish"), 404, "not-found")
    assert_problem(post(client_admin, BASE, {"title": "mine"}), 403, "forbidden")
    assert writes(tenant_a) == before
    published = act(client_admin, portal["id"], "publish")
    assert published.status_code == 200 and published.json()["state"] == "published"


def test_feedback_replaces_the_earlier_verdict(
    api_for: ApiFor, tech_a: User, end_user_a: User, tenant_a: Tenant
) -> None:
    tech, reader = api_for(tech_a), api_for(end_user_a)
    live = create(tech, "Reset your password", audience="portal")
    publish(tech, live["id"])
    url = f"{BASE}/{live['id']}/feedback"
    first = post(reader, url, {"helpful": True, "comment": "thanks"})
    assert first.status_code == 200
    body = first.json()
    assert (body["helpful_count"], body["not_helpful_count"], body["comments"]) == (1, 0, [])
    assert {k: v for k, v in body["mine"].items() if k != "at"} == {
        "helpful": True,
        "comment": "thanks",
        "version": 1,
    }
    again = post(reader, url, {"helpful": False}).json()
    assert (again["helpful_count"], again["not_helpful_count"], again["mine"]["helpful"]) == (0, 1, False)
    article = tech.get(f"{BASE}/{live['id']}").json()
    assert (article["helpful_count"], article["not_helpful_count"]) == (0, 1)
    summary = tech.get(url).json()
    assert (summary["helpful_count"], summary["not_helpful_count"], summary["mine"]) == (0, 1, None)
    assert writes(tenant_a)[2] == 1
    assert_problem(post(reader, url, {"comment": "no verdict"}), 422, "invalid-input")


def test_links_to_an_incident(api_for: ApiFor, tech_a: User, tenant_a: Tenant) -> None:
    tech = api_for(tech_a)
    with tenant_context(tenant_a):
        incident = incident_create(actor=actor_in(tenant_a, tech_a), short_description="VPN drops")
    article = create(tech, "VPN drops on hotel wifi")
    url = f"{BASE}/{article['id']}/links"
    created = post(tech, url, {"record_type": "incident", "record_id": str(incident.pk)})
    assert created.status_code == 201
    link = created.json()
    assert {k: v for k, v in link.items() if k not in ("id", "created_at")} == {
        "kind": "documents",
        "reading": "documents",
        "record_type": "incident",
        "record_id": str(incident.pk),
        "number": incident.number,
    }
    assert tech.get(url).json() == [link]
    before = writes(tenant_a)
    assert_problem(
        post(tech, url, {"record_type": "incident", "record_id": str(incident.pk)}), 409, "link-exists"
    )
    assert_problem(
        post(tech, url, {"record_type": "incident", "record_id": str(uuid.uuid4())}), 404, "not-found"
    )
    bad = assert_problem(
        post(tech, url, {"record_type": "spaceship", "record_id": str(incident.pk)}), 422, "invalid-input"
    )
    assert [e["field"] for e in bad["errors"]] == ["target_type"]
    assert writes(tenant_a) == before
    incident_links = api_for(tech_a).get(f"/api/v1/t/acme/incidents/{incident.pk}/history").json()
    assert [e["verb"] for e in incident_links][-1] == "link.added"


def test_another_tenant_s_article_answers_like_a_missing_one(
    api_for: ApiFor, tech_a: User, tech_ab: User, end_user_b: User, tenant_a: Tenant, tenant_b: Tenant
) -> None:
    b_article = create(api_for(tech_ab), "Globex VPN")  # tech_ab's token, acme path: lands in A
    with tenant_context(tenant_b):
        own = actor_in(tenant_b, tech_ab)
        from modules.knowledge.services import article_create

        b_only = article_create(actor=own, title="Globex only", audience="portal")
    tech = api_for(tech_a)
    same_as_missing(tech, lambda i: f"{BASE}/{i}", str(b_only.pk))
    same_as_missing(tech, lambda i: f"{BASE}/{i}/versions", str(b_only.pk))
    same_as_missing(api_for(tech_ab), lambda i: f"{BASE}/{i}", str(b_only.pk))  # B's id under A's path
    assert [a["title"] for a in tech.get(BASE).json()["results"]] == ["Globex VPN"]
    before = writes(tenant_b)
    assert_problem(act(tech, str(b_only.pk), "submit"), 404, "not-found")
    assert writes(tenant_b) == before
    refused = api_for(end_user_b).get(f"{BASE}/{b_article['id']}")
    assert refused.status_code == 404 and refused["Content-Type"] == PROBLEM  # no role in A: as missing


def test_openapi_documents_the_knowledge_paths(client_for: Callable[..., Client], tech_a: User) -> None:
    schema = client_for(tech_a).get("/api/v1/openapi.json").json()
    paths = {p for p in schema["paths"] if "/knowledge/" in p}
    assert paths == {
        "/api/v1/t/{tenant}/knowledge/articles",
        "/api/v1/t/{tenant}/knowledge/articles/{article_id}",
        "/api/v1/t/{tenant}/knowledge/articles/{article_id}/actions",
        "/api/v1/t/{tenant}/knowledge/articles/{article_id}/versions",
        "/api/v1/t/{tenant}/knowledge/articles/{article_id}/feedback",
        "/api/v1/t/{tenant}/knowledge/articles/{article_id}/links",
        "/api/v1/t/{tenant}/knowledge/articles/{article_id}/history",
    }
