"""The bell in the console and portal headers, the list page, mark read (htmx and plain POST) and the
preferences page."""

from __future__ import annotations

from collections.abc import Callable

from django.test import Client
from django_tenants.utils import tenant_context

from conftest import actor_in
from controlplane.accounts.models import User
from modules.notifications.models import Notification, NotificationPreference
from modules.notifications.services import notification_emit
from tenants.models import Tenant

from .factories import emit_args

ClientFor = Callable[..., Client]


def notify(tenant: Tenant, user: User, key: str, event: str = "record.assigned") -> Notification:
    with tenant_context(tenant):
        person = actor_in(tenant, user).person
        assert person is not None
        notification_emit(**emit_args(key=key, event=event), persons=[person])
        return Notification.objects.get(event__key=key)


def test_the_console_bell_shows_the_unread_count_and_the_newest_unread(
    tenant_a: Tenant, tech_a: User, client_for: ClientFor
) -> None:
    client = client_for(tech_a)
    page = client.get("/t/acme/incidents/").content.decode()
    assert 'aria-label="Notifications: 0 unread"' in page
    notify(tenant_a, tech_a, "one")
    notify(tenant_a, tech_a, "two", "sla.breached")
    page = client.get("/t/acme/incidents/").content.decode()
    assert 'aria-label="Notifications: 2 unread"' in page
    assert page.count('class="notification unread"') == 2
    assert '<a href="/t/acme/incidents/INC0000042/">INC0000042</a>' in page
    assert 'action="/t/acme/notifications/read-all/"' in page


def test_mark_read_by_plain_post_redirects_back_and_by_htmx_returns_the_item_and_count(
    tenant_a: Tenant, tech_a: User, client_for: ClientFor
) -> None:
    first, second = notify(tenant_a, tech_a, "one"), notify(tenant_a, tech_a, "two")
    client = client_for(tech_a)
    plain = client.post(f"/t/acme/notifications/{first.pk}/read/", {"next": "/t/acme/incidents/"})
    assert (plain.status_code, plain["Location"]) == (302, "/t/acme/incidents/")
    offsite = client.post(f"/t/acme/notifications/{second.pk}/read/", {"next": "https://evil.example/"})
    assert offsite["Location"] == "/t/acme/notifications/"
    third = notify(tenant_a, tech_a, "three")
    htmx = client.post(f"/t/acme/notifications/{third.pk}/read/", HTTP_HX_REQUEST="true").content.decode()
    assert f'id="notification-{third.pk}"' in htmx and "Mark read" not in htmx
    assert '<span id="notification-count" hx-swap-oob="true" class="badge">0</span>' in htmx
    with tenant_context(tenant_a):
        assert Notification.objects.filter(read_at=None).count() == 0


def test_the_list_page_mark_all_read_and_someone_else_s_notification(
    tenant_a: Tenant, tech_a: User, end_user_a: User, client_for: ClientFor
) -> None:
    notify(tenant_a, tech_a, "one")
    alices = notify(tenant_a, end_user_a, "alice")
    client = client_for(tech_a)
    page = client.get("/t/acme/notifications/").content.decode()
    assert "1 unread" in page and "record.assigned" in page
    assert client.post(f"/t/acme/notifications/{alices.pk}/read/").status_code == 404
    response = client.post("/t/acme/notifications/read-all/")
    assert (response.status_code, response["Location"]) == (302, "/t/acme/notifications/")
    with tenant_context(tenant_a):
        assert list(Notification.objects.filter(read_at=None).values_list("pk", flat=True)) == [alices.pk]


def test_the_portal_bell_and_preferences_page(
    tenant_a: Tenant, end_user_a: User, client_for: ClientFor
) -> None:
    notify(tenant_a, end_user_a, "one", "record.state_changed")
    client = client_for(end_user_a, host="acme.localhost")
    home = client.get("/").content.decode()
    assert 'aria-label="Notifications: 1 unread"' in home
    assert '<a href="/incidents/INC0000042/">INC0000042</a>' in home
    assert 'action="/notifications/read-all/"' in home
    assert client.get("/notifications/").status_code == 200
    saved = client.post(
        "/notifications/preferences/", {"email_opt_out": "on", "muted_events": ["record.commented"]}
    )
    assert saved.status_code == 200 and "Saved." in saved.content.decode()
    with tenant_context(tenant_a):
        assert list(NotificationPreference.objects.values_list("email_opt_out", "muted_events")) == [
            (True, ["record.commented"])
        ]
    bad = client.post("/notifications/preferences/", {"muted_events": ["sla.breached"]})
    assert bad.status_code == 422
