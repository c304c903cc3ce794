"""The shared tenant parts through the API and console: typed links, attachments (size limit, type
sniffing, permission-checked download) and full-text search scoped to what the searcher may see.

Every refusal checks that nothing was written.
"""

from __future__ import annotations

import io
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from django.core.files.base import ContentFile
from django.db import transaction
from django.test import Client, override_settings
from django_tenants.utils import tenant_context

from conftest import actor_in
from controlplane.accounts.models import User
from modules.incidents.services import incident_create, incident_search_refresh
from modules.records.models import ActivityEntry, Attachment, RecordLink, SearchDocument
from modules.records.selectors import search, search_tsquery
from modules.records.services import attachment_add, attachment_files_atomic
from tenants.models import Tenant

API = "/api/v1/t/acme"
PROBLEM = "application/problem+json"
ApiFor = Callable[[User], Client]
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" + b"\x00" * 64
PDF = b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<<>>\nendobj\n"
EXE = b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff\x00\x00" + b"\x00" * 64


def new_incident(tenant: Tenant, user: User, text: str, role: str = "technician", **fields: Any) -> Any:
    with tenant_context(tenant):
        return incident_create(actor=actor_in(tenant, user, role), short_description=text, **fields)


def upload(api: Client, record_id: Any, name: str, data: bytes, **extra: Any) -> Any:
    file = io.BytesIO(data)
    file.name = name
    return api.post(
        f"{API}/attachments", {"record_type": "incident", "record_id": str(record_id), "file": file, **extra}
    )


def counts(tenant: Tenant) -> tuple[int, int, int]:
    with tenant_context(tenant):
        return RecordLink.objects.count(), Attachment.objects.count(), ActivityEntry.objects.count()


# Links


def test_link_two_incidents_and_read_it_from_both_ends(
    tenant_a: Tenant, tech_a: User, api_for: ApiFor
) -> None:
    first = new_incident(tenant_a, tech_a, "Mail down for sales")
    second = new_incident(tenant_a, tech_a, "Mail down for finance")
    api = api_for(tech_a)
    body = {
        "source_type": "incident",
        "source_id": str(second.pk),
        "target_type": "incident",
        "target_id": str(first.pk),
        "kind": "duplicates",
    }
    created = api.post(f"{API}/links", body, content_type="application/json")
    assert created.status_code == 201, created.content
    again = api.post(f"{API}/links", body, content_type="application/json")
    assert again.status_code == 409 and again["Content-Type"] == PROBLEM
    from_first = api.get(f"{API}/links", {"record_type": "incident", "record_id": str(first.pk)}).json()
    from_second = api.get(f"{API}/links", {"record_type": "incident", "record_id": str(second.pk)}).json()
    assert (
        [link["id"] for link in from_first] == [link["id"] for link in from_second] == [created.json()["id"]]
    )
    with tenant_context(tenant_a):
        verbs = list(ActivityEntry.objects.filter(verb="link.added").values_list("record_id", flat=True))
    assert sorted(verbs) == sorted([first.pk, second.pk])
    deleted = api.delete(f"{API}/links/{created.json()['id']}")
    assert deleted.status_code == 204
    assert counts(tenant_a)[0] == 0


def test_link_refuses_self_unknown_kind_and_invisible_records(
    tenant_a: Tenant, tenant_b: Tenant, tech_ab: User, api_for: ApiFor
) -> None:
    mine = new_incident(tenant_a, tech_ab, "Printer jam")
    other_tenant = new_incident(tenant_b, tech_ab, "Globex printer")
    api = api_for(tech_ab)
    before = counts(tenant_a)

    def link(target: Any, kind: str = "relates_to", target_type: str = "incident") -> Any:
        body = {
            "source_type": "incident",
            "source_id": str(mine.pk),
            "target_type": target_type,
            "target_id": str(target),
            "kind": kind,
        }
        return api.post(f"{API}/links", body, content_type="application/json")

    assert link(mine.pk).status_code == 422
    assert link(other_tenant.pk).status_code == link(uuid.uuid4()).status_code == 404
    assert link(other_tenant.pk).json()["type"] == link(uuid.uuid4()).json()["type"]
    assert link(other_tenant.pk, kind="eats").status_code == 422
    refused = link(other_tenant.pk, target_type="spaceship")
    assert refused.status_code == 422 and refused.json()["errors"][0]["field"] == "target_type"
    assert counts(tenant_a) == before


def test_end_users_cannot_link_or_see_links(
    tenant_a: Tenant, tech_a: User, end_user_a: User, api_for: ApiFor
) -> None:
    own = new_incident(tenant_a, end_user_a, "My laptop is slow", role="end_user")
    other = new_incident(tenant_a, tech_a, "Related outage")
    before = counts(tenant_a)
    api = api_for(end_user_a)
    body = {
        "source_type": "incident",
        "source_id": str(own.pk),
        "target_type": "incident",
        "target_id": str(other.pk),
        "kind": "relates_to",
    }
    # The other incident is not theirs: it answers as missing; linking is refused either way.
    assert api.post(f"{API}/links", body, content_type="application/json").status_code in (403, 404)
    assert counts(tenant_a) == before
    listed = api.get(f"{API}/links", {"record_type": "incident", "record_id": str(own.pk)})
    assert listed.status_code == 403  # links are the desk's data (record.work)


# Attachments


@pytest.fixture
def media(tmp_path: Any) -> Any:
    with override_settings(MEDIA_ROOT=tmp_path):
        yield tmp_path


def test_attachment_is_sniffed_stored_under_the_tenant_and_downloaded(
    media: Any, tenant_a: Tenant, tech_a: User, api_for: ApiFor
) -> None:
    incident = new_incident(tenant_a, tech_a, "Screen flickers")
    api = api_for(tech_a)
    response = upload(api, incident.pk, "screen.png", PNG)
    assert response.status_code == 201, response.content
    body = response.json()
    assert (body["content_type"], body["size"], body["file_name"]) == ("image/png", len(PNG), "screen.png")
    with tenant_context(tenant_a):
        stored = Attachment.objects.get(pk=body["id"]).storage_name
    assert stored == f"{tenant_a.schema_name}/attachments/{body['id']}"
    download = api.get(f"{API}/attachments/{body['id']}/content")
    assert download.status_code == 200
    assert download.getvalue() == PNG
    assert download["Content-Type"] == "image/png"
    assert download["X-Content-Type-Options"] == "nosniff"
    assert download["Content-Disposition"].startswith("attachment;")
    listed = api.get(f"{API}/attachments", {"record_type": "incident", "record_id": str(incident.pk)}).json()
    assert [a["id"] for a in listed] == [body["id"]]


@pytest.mark.parametrize(
    ("name", "data", "message"),
    [
        ("invoice.pdf", EXE, "not accepted"),  # an executable dressed as a PDF
        ("photo.jpg", PNG, "name ends in .jpg"),  # real type and name disagree
        ("page.html", b"<html><script>alert(1)</script></html>", "unrecognised"),
        ("notes.txt", b"<!DOCTYPE html><html></html>", "HTML"),
        ("notes.txt", b"binary\x00\x01\x02", "control characters"),
        ("empty.txt", b"", "empty"),
    ],
)
def test_attachment_refusals_write_nothing(
    media: Any, tenant_a: Tenant, tech_a: User, api_for: ApiFor, name: str, data: bytes, message: str
) -> None:
    incident = new_incident(tenant_a, tech_a, "Needs a file")
    before = counts(tenant_a)
    response = upload(api_for(tech_a), incident.pk, name, data)
    assert response.status_code == 422, response.content
    assert response["Content-Type"] == PROBLEM
    assert message in response.json()["detail"]
    assert counts(tenant_a) == before
    assert list(media.rglob("*.*")) == [] and [p for p in media.rglob("*") if p.is_file()] == []


class Boom(Exception):
    """Raised by a test to fail the work around ``attachment_add``."""


def stored_files(media: Any) -> list[str]:
    """Every file under MEDIA_ROOT, relative to it, sorted."""
    return sorted(str(p.relative_to(media)) for p in media.rglob("*") if p.is_file())


def add_file(tenant: Tenant, user: User, incident: Any, name: str) -> Attachment:
    return attachment_add(
        actor=actor_in(tenant, user),
        record_type="incident",
        record_id=incident.pk,
        upload=ContentFile(b"log line\n", name=name),
    )


def test_files_stored_in_a_guarded_block_that_rolls_back_are_removed(
    media: Any, tenant_a: Tenant, tech_a: User
) -> None:
    incident = new_incident(tenant_a, tech_a, "Logs")
    before = counts(tenant_a)
    with tenant_context(tenant_a), pytest.raises(Boom), attachment_files_atomic():
        first = add_file(tenant_a, tech_a, incident, "one.log")
        add_file(tenant_a, tech_a, incident, "two.log")
        assert stored_files(media) != []  # stored while the work was going on
        raise Boom  # the rest of the work fails: nothing of it may stay
    assert stored_files(media) == []
    assert counts(tenant_a) == before
    with tenant_context(tenant_a):
        assert not Attachment.objects.filter(pk=first.pk).exists()


def test_a_rolled_back_savepoint_loses_its_file_and_the_committed_one_stays(
    media: Any, tenant_a: Tenant, tech_a: User
) -> None:
    incident = new_incident(tenant_a, tech_a, "Logs")
    with tenant_context(tenant_a):
        with attachment_files_atomic():
            kept = add_file(tenant_a, tech_a, incident, "kept.log")
            with pytest.raises(Boom), transaction.atomic():  # a savepoint the work gives up on
                add_file(tenant_a, tech_a, incident, "dropped.log")
                raise Boom
            with attachment_files_atomic():  # a nested block hands its kept file to the outer one
                inner = add_file(tenant_a, tech_a, incident, "inner.log")
        assert sorted(Attachment.objects.values_list("file_name", flat=True)) == ["inner.log", "kept.log"]
    assert stored_files(media) == sorted(f"{tenant_a.schema_name}/attachments/{a.pk}" for a in (kept, inner))


def test_files_of_an_outer_guarded_block_are_removed_when_it_fails_after_an_inner_one_ended(
    media: Any, tenant_a: Tenant, tech_a: User
) -> None:
    incident = new_incident(tenant_a, tech_a, "Logs")
    with tenant_context(tenant_a), pytest.raises(Boom), attachment_files_atomic():
        with attachment_files_atomic():
            add_file(tenant_a, tech_a, incident, "inner.log")
        raise Boom
    assert stored_files(media) == []


def test_attachment_over_the_size_limit_is_413(
    media: Any, tenant_a: Tenant, tech_a: User, api_for: ApiFor
) -> None:
    incident = new_incident(tenant_a, tech_a, "Big log")
    before = counts(tenant_a)
    with override_settings(ATTACHMENT_MAX_BYTES=1024):
        response = upload(api_for(tech_a), incident.pk, "big.log", b"x" * 1025)
        small = upload(api_for(tech_a), incident.pk, "small.log", b"x" * 1024)
    assert response.status_code == 413 and response["Content-Type"] == PROBLEM
    assert small.status_code == 201
    assert counts(tenant_a)[1] == before[1] + 1


def test_download_checks_the_record_permission_and_the_tenant(
    media: Any,
    tenant_a: Tenant,
    tenant_b: Tenant,
    tech_ab: User,
    end_user_a: User,
    api_for: ApiFor,
    client_for: Callable[..., Client],
) -> None:
    theirs = new_incident(tenant_a, end_user_a, "My VPN fails", role="end_user")
    internal_only = new_incident(tenant_a, tech_ab, "Firewall rule review")
    api = api_for(tech_ab)
    public = upload(api, theirs.pk, "vpn.log", b"vpn error 809\n").json()
    internal = upload(api, theirs.pk, "notes.txt", b"internal notes\n", internal="true").json()
    not_theirs = upload(api, internal_only.pk, "rules.csv", b"a,b\n1,2\n").json()
    assert internal["internal"] is True

    user_api = api_for(end_user_a)
    assert user_api.get(f"{API}/attachments/{public['id']}/content").status_code == 200
    missing = user_api.get(f"{API}/attachments/{uuid.uuid4()}/content")
    for refused in (internal, not_theirs):
        response = user_api.get(f"{API}/attachments/{refused['id']}/content")
        assert response.status_code == missing.status_code == 404
    listed = user_api.get(f"{API}/attachments", {"record_type": "incident", "record_id": str(theirs.pk)})
    assert [a["id"] for a in listed.json()] == [public["id"]]
    # Another tenant's path never serves tenant A's file.
    assert api.get(f"/api/v1/t/globex/attachments/{public['id']}/content").status_code == 404
    # The portal and console pages download through the same check.
    portal = client_for(end_user_a, host="acme.localhost")
    assert portal.get(f"/attachments/{public['id']}/").status_code == 200
    assert portal.get(f"/attachments/{internal['id']}/").status_code == 404
    console = client_for(tech_ab)
    assert console.get(f"/t/acme/attachments/{not_theirs['id']}/").status_code == 200
    assert console.get(f"/t/globex/attachments/{not_theirs['id']}/").status_code == 404


def test_console_upload_and_link_forms(
    media: Any, tenant_a: Tenant, tech_a: User, client_for: Callable[..., Client]
) -> None:
    incident = new_incident(tenant_a, tech_a, "Keyboard missing keys")
    other = new_incident(tenant_a, tech_a, "Keyboards batch faulty")
    console = client_for(tech_a)
    page = f"/t/acme/incidents/{incident.number}/"
    file = io.BytesIO(PDF)
    file.name = "receipt.pdf"
    posted = console.post(
        "/t/acme/attachments/add/",
        {"record_type": "incident", "record_id": str(incident.pk), "file": file, "next": page},
    )
    assert posted.status_code == 302 and posted["Location"] == page
    linked = console.post(
        "/t/acme/links/add/",
        {
            "source_type": "incident",
            "source_id": str(incident.pk),
            "target_number": other.number,
            "kind": "caused_by",
            "next": "https://evil.example/",
        },
    )
    assert linked.status_code == 302 and linked["Location"] == "/t/acme/"  # no open redirect
    html = console.get(page).content.decode()
    assert "receipt.pdf" in html and other.number in html and "is caused by" in html
    assert "causes" in console.get(f"/t/acme/incidents/{other.number}/").content.decode()


# Search


def test_search_query_building() -> None:
    assert search_tsquery("Outlook crashes on start") == "outlook & crashes & on & start:*"
    assert search_tsquery("  '&|!:* ") is None
    assert search_tsquery("INC0000042") == "inc0000042:*"


def test_search_ranks_stems_prefixes_and_scopes(
    tenant_a: Tenant, tenant_b: Tenant, tech_ab: User, end_user_a: User
) -> None:
    title_hit = new_incident(tenant_a, tech_ab, "Printers offline on floor 3")
    body_hit = new_incident(tenant_a, tech_ab, "Floor 3 problems", description="the printer queue is stuck")
    theirs = new_incident(tenant_a, end_user_a, "My printer prints blank pages", role="end_user")
    new_incident(tenant_b, tech_ab, "Globex printer offline")
    with tenant_context(tenant_a):
        tech = actor_in(tenant_a, tech_ab)
        hits = search(actor=tech, q="printer")
        assert {h.record_id for h in hits[:2]} == {title_hit.pk, theirs.pk}  # title matches first
        assert {h.record_id for h in hits} == {title_hit.pk, body_hit.pk, theirs.pk}  # stemmed, no tenant B
        assert hits[-1].record_id == body_hit.pk  # title (A) outranks body (B)
        assert [h.record_id for h in search(actor=tech, q="floor 3 print")] == [title_hit.pk, body_hit.pk]
        assert [h.number for h in search(actor=tech, q=title_hit.number)] == [title_hit.number]
        user = actor_in(tenant_a, end_user_a, "end_user")
        assert [h.record_id for h in search(actor=user, q="printer")] == [theirs.pk]
        assert search(actor=tech, q="the") == []  # only a stop word


def test_search_api_and_console_page(
    tenant_a: Tenant, tech_a: User, api_for: ApiFor, client_for: Callable[..., Client]
) -> None:
    incident = new_incident(tenant_a, tech_a, "Wi-Fi drops in meeting rooms")
    response = api_for(tech_a).get(f"{API}/search", {"q": "meeting roo"})
    assert response.status_code == 200
    assert [(h["record_type"], h["number"]) for h in response.json()] == [("incident", incident.number)]
    assert api_for(tech_a).get(f"{API}/search", {"q": ""}).status_code == 422
    html = client_for(tech_a).get("/t/acme/search/", {"q": "wi-fi"}).content.decode()
    assert f'href="/t/acme/incidents/{incident.number}/"' in html


def test_search_documents_follow_updates_and_bulk_refresh(tenant_a: Tenant, tech_a: User) -> None:
    incident = new_incident(tenant_a, tech_a, "Old title")
    with tenant_context(tenant_a):
        from modules.incidents.services import incident_update

        incident_update(
            actor=actor_in(tenant_a, tech_a), incident=incident, short_description="Disk full on SRV01"
        )
        tech = actor_in(tenant_a, tech_a)
        assert [h.title for h in search(actor=tech, q="disk")] == ["Disk full on SRV01"]
        assert search(actor=tech, q="old title") == []
        SearchDocument.objects.all().delete()
        assert incident_search_refresh() == 1
        assert [h.record_id for h in search(actor=tech, q="srv01")] == [incident.pk]


def test_common_words_rank_the_newest_matches(
    monkeypatch: pytest.MonkeyPatch, tenant_a: Tenant, tech_a: User, end_user_a: User
) -> None:
    """Past COMPLETE_LIMIT matches, only the newest RANK_WINDOW are ranked; below it, every match is."""
    from modules.records import selectors

    made = [new_incident(tenant_a, tech_a, f"Router {n} reboots") for n in range(5)]
    own = new_incident(tenant_a, end_user_a, "My router is down", role="end_user")
    with tenant_context(tenant_a):
        tech = actor_in(tenant_a, tech_a)
        assert len(search(actor=tech, q="router")) == 6
        monkeypatch.setattr(selectors, "COMPLETE_LIMIT", 2)
        monkeypatch.setattr(selectors, "RANK_WINDOW", 3)
        newest = {own.pk, made[4].pk, made[3].pk}
        assert {h.record_id for h in search(actor=tech, q="router")} == newest
        assert {h.record_id for h in search(actor=tech, q="router 1")} == {made[1].pk}  # rare: complete
        monkeypatch.setattr(selectors, "RECENT_LIMIT", 0)  # no match among the newest documents:
        assert len(search(actor=tech, q="router")) == 3  # the first plan's collected matches stand
        user = actor_in(tenant_a, end_user_a, "end_user")
        assert [h.record_id for h in search(actor=user, q="router")] == [own.pk]


def test_end_users_attach_to_their_own_records_only(
    media: Any, tenant_a: Tenant, tech_a: User, end_user_a: User, api_for: ApiFor
) -> None:
    """A published portal article is visible to end users, but they cannot hang files on it."""
    from modules.knowledge.services import article_create, article_publish

    with tenant_context(tenant_a):
        tech = actor_in(tenant_a, tech_a, "owner")
        article = article_create(
            actor=tech, title="Reset your password", body="Use the portal.", audience="portal"
        )
        article_publish(actor=tech, article=article)
    own = new_incident(tenant_a, end_user_a, "Cannot print", role="end_user")
    api = api_for(end_user_a)
    before = counts(tenant_a)
    file = io.BytesIO(b"hello\n")
    file.name = "note.txt"
    refused = api.post(
        f"{API}/attachments", {"record_type": "article", "record_id": str(article.pk), "file": file}
    )
    assert refused.status_code == 403 and refused["Content-Type"] == PROBLEM
    assert counts(tenant_a) == before
    assert upload(api, own.pk, "printer.txt", b"error 49\n").status_code == 201


def test_end_users_history_leaves_out_links_and_internal_files(
    media: Any, tenant_a: Tenant, tech_a: User, end_user_a: User, api_for: ApiFor
) -> None:
    own = new_incident(tenant_a, end_user_a, "Laptop will not boot", role="end_user")
    other = new_incident(tenant_a, tech_a, "Firmware rollout")
    tech_api = api_for(tech_a)
    link = {
        "source_type": "incident",
        "source_id": str(own.pk),
        "target_type": "incident",
        "target_id": str(other.pk),
        "kind": "caused_by",
    }
    assert tech_api.post(f"{API}/links", link, content_type="application/json").status_code == 201
    assert upload(tech_api, own.pk, "secret.txt", b"internal\n", internal="true").status_code == 201
    assert upload(tech_api, own.pk, "public.txt", b"for you\n").status_code == 201
    url = f"/api/v1/t/acme/incidents/{own.pk}/history"
    theirs = [(e["verb"], e["changes"].get("file_name")) for e in api_for(end_user_a).get(url).json()]
    assert theirs == [("incident.created", None), ("attachment.added", "public.txt")]
    technicians = [e["verb"] for e in tech_api.get(url).json()]
    assert technicians == ["incident.created", "link.added", "attachment.added", "attachment.added"]
