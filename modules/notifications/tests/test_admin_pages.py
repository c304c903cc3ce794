"""Console pages of the tenant's notification settings: email branding, webhook endpoints (create with the
secret shown once, disable, enable, delete, the delivery log). Admins change, technicians read, end users
are refused; a denial writes nothing, and another tenant's endpoint id answers 404."""

from __future__ import annotations

import datetime as dt
import re
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone
from django_tenants.utils import tenant_context

from conftest import actor_in, make_user
from controlplane.accounts.models import User
from controlplane.accounts.services import provider_membership_set, tenant_membership_set
from controlplane.providers.models import Provider
from modules.notifications.models import NotificationSettings, WebhookDelivery, WebhookEndpoint
from modules.notifications.services import (
    notification_emit,
    webhook_delivery_attempt,
    webhook_endpoint_create,
)
from modules.records.models import ActivityEntry
from tenants.models import Tenant

from .factories import emit_args

ClientFor = Callable[..., Client]
BASE = "/t/acme/notifications/"
PUBLIC_URL = "https://1.1.1.1/hooks"  # an IP literal: resolves without DNS, and is a public address


@pytest.fixture
def owner(provider: Provider, tenant_a: Tenant, tenant_b: Tenant) -> User:
    """A provider owner: an admin in every client of the provider."""
    user = make_user("owner@northwind.example")
    provider_membership_set(user=user, provider=provider, role="owner")
    return user


@pytest.fixture
def client_admin(tenant_a: Tenant) -> User:
    user = make_user("it.lead@acme.example")
    tenant_membership_set(user=user, tenant=tenant_a, role="client_admin")
    return user


def error_next_to(body: str, field: str, message: str) -> bool:
    """Whether ``message`` is the error list right before ``field``'s paragraph, and the input points to
    it (``aria-describedby``), as Django's ``as_p`` renders a field error."""
    pattern = (
        rf'<ul class="errorlist" id="id_{field}_error"><li>{re.escape(message)}</li></ul>\s*<p>\s*'
        rf'<label for="id_{field}">[^<]*</label>\s*<[^>]+name="{field}"[^>]*aria-describedby="id_{field}_error"'
    )
    return re.search(pattern, body) is not None


def writes(tenant: Tenant) -> tuple[Any, ...]:
    """Everything these pages could write, to compare before and after a denial."""
    with tenant_context(tenant):
        return (
            ActivityEntry.objects.count(),
            list(
                NotificationSettings.objects.values_list(
                    "sender_name", "reply_to", "accent_colour", "logo_url"
                )
            ),
            list(
                WebhookEndpoint.objects.order_by("pk").values_list("pk", "url", "active", "disabled_reason")
            ),
        )


def endpoint_in(tenant: Tenant, url: str = PUBLIC_URL) -> WebhookEndpoint:
    with tenant_context(tenant):
        admin = actor_in(tenant, make_user(f"hooks@{tenant.slug}.example"), "admin")
        endpoint, _ = webhook_endpoint_create(actor=admin, url=url, event_types=["record.assigned"])
        return endpoint


# Navigation


def test_the_console_navigation_links_staff_to_the_settings(
    tenant_a: Tenant, tech_a: User, client_admin: User, client_for: ClientFor
) -> None:
    link = f'<li><a href="{BASE}settings/">Settings</a></li>'
    for user in (tech_a, client_admin):
        assert link in client_for(user).get("/t/acme/incidents/").content.decode(), user.email
    current = client_for(tech_a).get(f"{BASE}webhooks/").content.decode()
    assert f'<li><a href="{BASE}settings/" aria-current="page">Settings</a></li>' in current


# Email branding


def test_an_admin_changes_the_branding_and_errors_appear_next_to_their_fields(
    tenant_a: Tenant, client_admin: User, client_for: ClientFor
) -> None:
    client = client_for(client_admin)
    page = client.get(f"{BASE}settings/")
    body = page.content.decode()
    assert page.status_code == 200
    assert 'name="accent_colour" value="#1f3a5f"' in body
    assert f'href="{BASE}preferences/"' in body and f'href="{BASE}webhooks/"' in body

    bad = client.post(
        f"{BASE}settings/",
        {
            "sender_name": "Acme IT",
            "reply_to": "nope",
            "accent_colour": "blue",
            "logo_url": "http://x.example/l.png",
        },
    )
    body = bad.content.decode()
    assert bad.status_code == 422
    for field, message in (("reply_to", "invalid"), ("accent_colour", "#rrggbb"), ("logo_url", "invalid")):
        assert error_next_to(body, field, message), field
    assert 'value="blue"' in body  # what was typed stays in the form
    assert writes(tenant_a)[1] == []  # nothing saved

    saved = client.post(
        f"{BASE}settings/",
        {
            "sender_name": "Acme IT",
            "reply_to": "help@acme.example",
            "accent_colour": "#aa3300",
            "logo_url": "https://acme.example/logo.png",
        },
    )
    assert saved.status_code == 200 and "Saved." in saved.content.decode()
    assert writes(tenant_a)[1] == [
        ("Acme IT", "help@acme.example", "#aa3300", "https://acme.example/logo.png")
    ]
    with tenant_context(tenant_a):
        assert list(ActivityEntry.objects.values_list("verb", flat=True)) == ["notification_settings.changed"]


def test_technicians_read_the_branding_and_end_users_are_refused_writing_nothing(
    tenant_a: Tenant, tech_a: User, end_user_a: User, client_for: ClientFor
) -> None:
    before = writes(tenant_a)
    technician = client_for(tech_a)
    page = technician.get(f"{BASE}settings/")
    body = page.content.decode()
    assert page.status_code == 200
    assert (
        "<th>Sender name</th><td>Acme Corp</td>" in body and '<form method="post" class="card">' not in body
    )
    refused = technician.post(f"{BASE}settings/", {"sender_name": "Evil", "accent_colour": "#000000"})
    assert refused.status_code == 403 and refused["X-Required-Permission"] == "config.manage"

    end_user = client_for(end_user_a)
    for response in (
        end_user.get(f"{BASE}settings/"),
        end_user.post(f"{BASE}settings/", {"sender_name": "Evil", "accent_colour": "#000000"}),
    ):
        assert response.status_code == 403
        assert response["X-Required-Permission"] in ("config.read", "config.manage")
    assert writes(tenant_a) == before


# Webhook endpoints


def test_an_admin_adds_an_endpoint_and_sees_its_secret_once(
    tenant_a: Tenant, owner: User, client_for: ClientFor
) -> None:
    client = client_for(owner)
    form = client.get(f"{BASE}webhooks/").content.decode()
    assert "No webhook endpoints yet." in form
    assert 'type="checkbox" name="event_types" value="sla.breached"' in form
    created = client.post(
        f"{BASE}webhooks/",
        {"url": PUBLIC_URL, "event_types": ["sla.breached", "record.assigned"], "description": "PagerDuty"},
    )
    body = created.content.decode()
    assert created.status_code == 201
    with tenant_context(tenant_a):
        endpoint = WebhookEndpoint.objects.get()
    assert (endpoint.url, endpoint.event_types, endpoint.description) == (
        PUBLIC_URL,
        ["record.assigned", "sla.breached"],
        "PagerDuty",
    )
    assert endpoint.secret.startswith("whsec_")
    assert f'value="{endpoint.secret}"' in body
    listed = client.get(f"{BASE}webhooks/").content.decode()
    detail = client.get(f"{BASE}webhooks/{endpoint.pk}/").content.decode()
    assert f'<a href="{BASE}webhooks/{endpoint.pk}/">{PUBLIC_URL}</a>' in listed
    assert endpoint.secret not in listed and endpoint.secret not in detail


def test_bad_endpoint_input_shows_errors_next_to_the_fields_and_writes_nothing(
    tenant_a: Tenant, client_admin: User, client_for: ClientFor
) -> None:
    before = writes(tenant_a)
    response = client_for(client_admin).post(f"{BASE}webhooks/", {"url": "http://localhost/hooks"})
    body = response.content.decode()
    assert response.status_code == 422
    assert error_next_to(body, "url", "an absolute https URL")
    assert 'id="id_event_types_error"><li>at least one event type (one of record.assigned,' in body
    assert 'value="http://localhost/hooks"' in body
    assert writes(tenant_a) == before


def test_an_admin_disables_enables_and_deletes_an_endpoint_with_htmx_or_plain_posts(
    tenant_a: Tenant, client_admin: User, client_for: ClientFor
) -> None:
    endpoint = endpoint_in(tenant_a)
    client = client_for(client_admin)
    row = client.post(f"{BASE}webhooks/{endpoint.pk}/active/", {"active": "0"}, HTTP_HX_REQUEST="true")
    body = row.content.decode()
    assert row.status_code == 200 and body.startswith(f'<tr id="webhook-{endpoint.pk}">')
    assert (
        "<strong>disabled</strong><br><small>disabled by It.Lead on " in body and ">Enable</button>" in body
    )
    with tenant_context(tenant_a):
        endpoint.refresh_from_db()
        assert endpoint.active is False
        notification_emit(**emit_args(key="while-disabled"))  # a disabled endpoint gets nothing
        assert WebhookDelivery.objects.count() == 0

    enabled = client.post(f"{BASE}webhooks/{endpoint.pk}/active/", {"active": "1"})
    assert (enabled.status_code, enabled["Location"]) == (302, f"{BASE}webhooks/")
    with tenant_context(tenant_a):
        endpoint.refresh_from_db()
        assert (endpoint.active, endpoint.disabled_reason) == (True, "")

    gone = client.post(f"{BASE}webhooks/{endpoint.pk}/delete/", HTTP_HX_REQUEST="true")
    assert (gone.status_code, gone.content) == (200, b"")
    with tenant_context(tenant_a):
        assert WebhookEndpoint.objects.count() == 0
        assert list(
            ActivityEntry.objects.filter(record_type="webhook_endpoint").values_list("verb", flat=True)
        ) == [
            "webhook_endpoint.created",
            "webhook_endpoint.disabled",
            "webhook_endpoint.enabled",
            "webhook_endpoint.deleted",
        ]
    assert client.get(f"{BASE}webhooks/{endpoint.pk}/").status_code == 404


def test_the_delivery_log_shows_attempts_status_codes_and_the_next_attempt(
    tenant_a: Tenant, tech_a: User, receiver: Any, client_for: ClientFor
) -> None:
    server = receiver([503, 200])
    endpoint = endpoint_in(tenant_a, server.url)
    with tenant_context(tenant_a):
        notification_emit(**emit_args(key="one", title="VPN drops"))
        delivery = WebhookDelivery.objects.get()
        t0 = timezone.now()
        assert webhook_delivery_attempt(delivery_id=delivery.pk, now=t0) == "pending"
    client = client_for(tech_a)  # technicians read the log
    page = client.get(f"{BASE}webhooks/{endpoint.pk}/").content.decode()
    assert "INC0000042 VPN drops" in page
    attempt = f'<div class="attempt">{t0:%Y-%m-%dT%H:%M:%S} · <strong>503</strong> · <small>status 503 from receiver</small></div>'
    assert attempt in page
    retry_at = t0 + dt.timedelta(seconds=30)
    # pending: the next attempt, as a machine-readable moment and in the viewer's zone, relative to now
    assert f'<time datetime="{retry_at.astimezone(dt.UTC).isoformat()}"' in page
    assert "Add an endpoint" not in page and ">Disable</button>" not in page

    with tenant_context(tenant_a):
        assert webhook_delivery_attempt(delivery_id=delivery.pk, now=retry_at) == "delivered"
    log = client.get(f"{BASE}webhooks/{endpoint.pk}/", HTTP_HX_REQUEST="true").content.decode()
    assert log.startswith('<div id="deliveries">') and "<h1>" not in log
    assert "<strong>200</strong>" in log and '<tr class="delivery delivered">' in log
    assert log.count('<div class="attempt">') == 2


def test_technicians_and_end_users_cannot_change_endpoints_and_nothing_is_written(
    tenant_a: Tenant, tech_a: User, end_user_a: User, client_for: ClientFor
) -> None:
    endpoint = endpoint_in(tenant_a)
    before = writes(tenant_a)
    technician = client_for(tech_a)
    listed = technician.get(f"{BASE}webhooks/")
    assert listed.status_code == 200 and "Add an endpoint" not in listed.content.decode()
    for path, data in (
        ("webhooks/", {"url": PUBLIC_URL, "event_types": ["sla.breached"]}),
        (f"webhooks/{endpoint.pk}/active/", {"active": "0"}),
        (f"webhooks/{endpoint.pk}/delete/", {}),
    ):
        refused = technician.post(f"{BASE}{path}", data)
        assert refused.status_code == 403, path
        assert refused["X-Required-Permission"] == "config.manage"
    end_user = client_for(end_user_a)
    for response in (
        end_user.get(f"{BASE}webhooks/"),
        end_user.get(f"{BASE}webhooks/{endpoint.pk}/"),
        end_user.post(f"{BASE}webhooks/", {"url": PUBLIC_URL, "event_types": ["sla.breached"]}),
        end_user.post(f"{BASE}webhooks/{endpoint.pk}/active/", {"active": "0"}),
        end_user.post(f"{BASE}webhooks/{endpoint.pk}/delete/"),
    ):
        assert response.status_code == 403
    assert writes(tenant_a) == before


def test_tenant_b_s_endpoint_under_tenant_a_s_path_is_404_and_untouched(
    tenant_a: Tenant, tenant_b: Tenant, owner: User, client_for: ClientFor
) -> None:
    theirs = endpoint_in(tenant_b)
    before = writes(tenant_b)
    client = client_for(owner)  # an admin in both tenants
    assert client.get(f"/t/globex/notifications/webhooks/{theirs.pk}/").status_code == 200
    for method, suffix, data in (
        ("get", "", {}),
        ("post", "active/", {"active": "0"}),
        ("post", "delete/", {}),
    ):
        crossed = getattr(client, method)(f"{BASE}webhooks/{theirs.pk}/{suffix}", data)
        missing = getattr(client, method)(f"{BASE}webhooks/{uuid.uuid4()}/{suffix}", data)
        assert crossed.status_code == missing.status_code == 404, suffix
    assert writes(tenant_b) == before
