"""The provider's view of email in: inbound addresses (API and console page), ignored and failed messages
(API and management command), and the minute's sweep of messages left unprocessed."""

from __future__ import annotations

import datetime as dt
import io
from collections.abc import Callable
from contextlib import redirect_stdout
from typing import Any

from django.core.management import call_command
from django.test import Client
from django.utils import timezone
from django_tenants.utils import tenant_context

from conftest import actor_in
from controlplane.accounts.models import User
from controlplane.mailin.models import InboundAddress, InboundMailbox, InboundMessage
from controlplane.mailin.services import MAX_ATTEMPTS, mailin_sweep
from modules.mailin.services import inbound_message_process
from modules.mailin.tests.factories import address_for, email_bytes, stored
from modules.records.models import ActivityEntry
from modules.requests.services import catalog_category_create, catalog_item_create
from tenants.models import Tenant

ApiFor = Callable[[User], Client]
PROBLEM = "application/problem+json"


def post(client: Client, path: str, body: dict[str, Any]) -> Any:
    return client.post(path, body, content_type="application/json")


def test_a_technician_adds_lists_and_removes_inbound_addresses(
    tenant_a: Tenant, tech_a: User, api_for: ApiFor
) -> None:
    client = api_for(tech_a)
    created = post(
        client,
        "/api/v1/t/acme/mailin/addresses",
        {
            "address": " Help@Acme.Example ",
            "mailbox": {"host": "imap.acme.example", "username": "help", "password": "s3cret-imap"},
        },
    )
    assert created.status_code == 201, created.content
    body = created.json()
    assert {k: body[k] for k in ("address", "creates", "catalog_item_id")} == {
        "address": "help@acme.example",
        "creates": "incident",
        "catalog_item_id": None,
    }
    assert body["mailbox"] == {
        "host": "imap.acme.example",
        "port": 993,
        "security": "tls",
        "username": "help",
        "folder": "INBOX",
        "enabled": True,
        "last_polled_at": None,
        "last_error": "",
    }
    assert b"s3cret-imap" not in created.content

    listed = client.get("/api/v1/t/acme/mailin/addresses")
    assert [a["address"] for a in listed.json()] == ["help@acme.example"]
    changed = client.put(
        f"/api/v1/t/acme/mailin/addresses/{body['id']}/mailbox",
        {"host": "127.0.0.1", "port": 143, "security": "starttls", "username": "desk", "password": "x"},
        content_type="application/json",
    )
    assert changed.status_code == 200, changed.content
    assert (changed.json()["mailbox"]["port"], changed.json()["mailbox"]["security"]) == (143, "starttls")

    deleted = client.delete(f"/api/v1/t/acme/mailin/addresses/{body['id']}")
    assert deleted.status_code == 204
    assert (InboundAddress.objects.count(), InboundMailbox.objects.count()) == (0, 0)
    with tenant_context(tenant_a):
        verbs = list(
            ActivityEntry.objects.filter(record_type="mailin_settings").values_list("verb", flat=True)
        )
    assert verbs == [
        "inbound_address.created",
        "inbound_mailbox.set",
        "inbound_mailbox.set",
        "inbound_address.deleted",
    ]


def test_bad_addresses_answer_problems_and_write_nothing(
    tenant_a: Tenant, tenant_b: Tenant, tech_ab: User, api_for: ApiFor
) -> None:
    client = api_for(tech_ab)
    address_for(tenant_b, tech_ab, "help@globex.example")

    taken = post(client, "/api/v1/t/acme/mailin/addresses", {"address": "HELP@globex.example"})
    not_email = post(client, "/api/v1/t/acme/mailin/addresses", {"address": "not an address"})
    no_item = post(
        client,
        "/api/v1/t/acme/mailin/addresses",
        {"address": "req@acme.example", "creates": "service_request"},
    )
    with tenant_context(tenant_b):
        actor = actor_in(tenant_b, tech_ab)
        item_b = catalog_item_create(
            actor=actor, name="Dock", category=catalog_category_create(actor=actor, name="HW")
        )
    foreign_item = post(
        client,
        "/api/v1/t/acme/mailin/addresses",
        {"address": "req@acme.example", "creates": "service_request", "catalog_item_id": str(item_b.pk)},
    )

    assert (taken.status_code, taken["Content-Type"], taken.json()["type"]) == (
        409,
        PROBLEM,
        "/problems/address-taken",
    )
    assert (not_email.status_code, not_email.json()["errors"]) == (
        422,
        [{"field": "address", "message": "not an email address"}],
    )
    assert (no_item.status_code, no_item.json()["errors"][0]["field"]) == (422, "catalog_item_id")
    assert (foreign_item.status_code, foreign_item.json()["errors"][0]["message"]) == (
        422,
        "no such active item",
    )
    assert list(InboundAddress.objects.values_list("address", flat=True)) == ["help@globex.example"]


def test_end_users_may_not_see_or_change_inbound_addresses(
    tenant_a: Tenant, tech_a: User, end_user_a: User, api_for: ApiFor, client_for: Callable[..., Client]
) -> None:
    address = address_for(tenant_a, tech_a, "help@acme.example")
    client = api_for(end_user_a)

    listed = client.get("/api/v1/t/acme/mailin/addresses")
    created = post(client, "/api/v1/t/acme/mailin/addresses", {"address": "x@acme.example"})
    deleted = client.delete(f"/api/v1/t/acme/mailin/addresses/{address.pk}")
    messages = client.get("/api/v1/t/acme/mailin/messages")

    assert [r.status_code for r in (listed, created, deleted, messages)] == [403, 403, 403, 403]
    assert list(InboundAddress.objects.values_list("address", flat=True)) == ["help@acme.example"]
    assert client_for(end_user_a).get("/t/acme/mailin/").status_code == 403


def test_ignored_and_failed_messages_are_listed_with_their_reasons(
    tenant_a: Tenant, tenant_b: Tenant, tech_ab: User, api_for: ApiFor, settings: Any, tmp_path: Any
) -> None:
    settings.MEDIA_ROOT = tmp_path
    help_a = address_for(tenant_a, tech_ab, "help@acme.example")
    help_b = address_for(tenant_b, tech_ab, "help@globex.example")
    kept = [
        stored(help_a, email_bytes(subject="A real one")),
        stored(help_a, email_bytes(subject="Automatic reply: away")),
        stored(help_a, b"\x00garbage\r\n"),
        stored(help_b, b"\x00garbage of B\r\n"),
    ]
    for tenant, message in zip((tenant_a, tenant_a, tenant_a, tenant_b), kept, strict=True):
        with tenant_context(tenant):
            inbound_message_process(message_id=message.pk)

    client = api_for(tech_ab)
    default = client.get("/api/v1/t/acme/mailin/messages")
    processed = client.get("/api/v1/t/acme/mailin/messages", {"status": "processed"})

    assert [(m["id"], m["status"], m["reason"]) for m in default.json()] == [
        (kept[2].pk, "failed", "MessageUnreadable: no sender address could be read from the From header"),
        (kept[1].pk, "ignored", "automatic reply: subject 'Automatic reply: away'"),
    ]
    assert [(m["id"], m["result_number"]) for m in processed.json()] == [(kept[0].pk, "INC0000001")]

    out = io.StringIO()
    call_command("mail_messages", stdout=out)
    lines = [line.split("\t") for line in out.getvalue().splitlines()]
    assert [(int(f[0]), f[2], f[4]) for f in lines] == [
        (kept[3].pk, "globex", "failed"),
        (kept[2].pk, "acme", "failed"),
    ]
    raw = io.BytesIO()
    wrapper = io.TextIOWrapper(raw)
    with redirect_stdout(wrapper):
        call_command("mail_messages", raw=kept[3].pk)
        wrapper.flush()
    assert raw.getvalue() == b"\x00garbage of B\r\n"


def test_the_console_page_lists_and_adds_addresses(
    tenant_a: Tenant, tech_a: User, client_for: Callable[..., Client]
) -> None:
    client = client_for(tech_a)
    added = client.post("/t/acme/mailin/", {"address": "Desk@Acme.example", "creates": "incident"})
    page = client.get("/t/acme/mailin/")

    assert added.status_code == 302
    assert page.status_code == 200
    assert b"desk@acme.example" in page.content
    removed = client.post("/t/acme/mailin/", {"delete": str(InboundAddress.objects.get().pk)})
    assert (removed.status_code, InboundAddress.objects.count()) == (302, 0)


def test_the_sweep_requeues_messages_left_unprocessed_then_fails_them(tenant_a: Tenant, tech_a: User) -> None:
    message = stored(address_for(tenant_a, tech_a, "help@acme.example"), email_bytes())
    fresh = timezone.now()

    assert mailin_sweep(now=fresh) == ([], 0, 0)  # enqueued just now: not stale yet
    later = fresh + dt.timedelta(minutes=11)
    assert mailin_sweep(now=later) == ([], 1, 0)
    message.refresh_from_db()
    assert (message.status, message.attempts, message.enqueued_at) == ("received", 2, later)

    much_later = later + dt.timedelta(minutes=11)
    InboundMessage.objects.filter(pk=message.pk).update(attempts=MAX_ATTEMPTS)
    assert mailin_sweep(now=much_later) == ([], 0, 1)
    message.refresh_from_db()
    assert (message.status, message.reason) == ("failed", "processing did not finish after 3 attempts")
