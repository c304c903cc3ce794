"""The notifications and webhooks API: my notifications, mark read, preferences, webhook admin; other
tenants' ids answer like ids that never existed."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.test import Client
from django_tenants.utils import tenant_context

from conftest import actor_in, make_user
from controlplane.accounts.models import User
from controlplane.accounts.services import provider_membership_set, tenant_grant
from modules.notifications.models import Notification, NotificationPreference, WebhookEndpoint
from modules.notifications.services import notification_emit
from modules.people.models import Person
from modules.records.models import uuid7
from tenants.models import Tenant

from .factories import emit_args

ApiFor = Callable[[User], Client]
PROBLEM = "application/problem+json"


def notify(tenant: Tenant, user: User, key: str, event: str = "record.assigned") -> Notification:
    """An in-app notification for ``user``'s person in ``tenant``."""
    with tenant_context(tenant):
        person = actor_in(tenant, user).person
        assert person is not None
        notification_emit(**emit_args(key=key, event=event), persons=[person])
        return Notification.objects.get(event__key=key, person=person)


def test_my_notifications_newest_first_with_the_unread_count(
    tenant_a: Tenant, tech_a: User, end_user_a: User, api_for: ApiFor
) -> None:
    notify(tenant_a, tech_a, "one")
    second = notify(tenant_a, tech_a, "two", "sla.breached")
    notify(tenant_a, end_user_a, "for-alice")
    client = api_for(tech_a)

    body = client.get("/api/v1/t/acme/notifications").json()
    assert body["unread_count"] == 2
    assert [(i["event"]["event"], i["event"]["number"], i["read_at"]) for i in body["items"]] == [
        ("sla.breached", "INC0000042", None),
        ("record.assigned", "INC0000042", None),
    ]
    assert body["items"][0]["event"]["critical"] is True

    read = client.post(f"/api/v1/t/acme/notifications/{second.pk}/read")
    assert read.status_code == 200 and read.json()["read_at"] is not None
    unread = client.get("/api/v1/t/acme/notifications", {"unread_only": "true"}).json()
    assert unread["unread_count"] == 1 and len(unread["items"]) == 1
    assert client.post("/api/v1/t/acme/notifications/read-all").json() == {"marked": 1}
    assert client.get("/api/v1/t/acme/notifications").json()["unread_count"] == 0
    with tenant_context(tenant_a):  # alice's stays unread
        assert (
            Notification.objects.filter(read_at=None).values_list("event__key", flat=True).get()
            == "for-alice"
        )


def test_someone_else_s_or_another_tenant_s_notification_answers_like_a_missing_one(
    tenant_a: Tenant, tenant_b: Tenant, tech_ab: User, end_user_a: User, api_for: ApiFor
) -> None:
    in_b = notify(tenant_b, tech_ab, "b")
    alices = notify(tenant_a, end_user_a, "alice")
    own = notify(tenant_a, tech_ab, "a")
    client = api_for(tech_ab)
    never = uuid7()

    answers = [client.post(f"/api/v1/t/acme/notifications/{pk}/read") for pk in (in_b.pk, alices.pk, never)]
    assert [a.status_code for a in answers] == [404, 404, 404]
    assert {a["Content-Type"] for a in answers} == {PROBLEM}
    assert {a.json()["type"] for a in answers} == {"/problems/not-found"}
    assert client.post(f"/api/v1/t/acme/notifications/{own.pk}/read").status_code == 200
    with tenant_context(tenant_b):
        assert Notification.objects.get(pk=in_b.pk).read_at is None
    with tenant_context(tenant_a):
        assert Notification.objects.get(pk=alices.pk).read_at is None
    assert client.post(f"/api/v1/t/globex/notifications/{in_b.pk}/read").status_code == 200


def test_preferences_round_trip_and_critical_events_cannot_be_muted(
    tenant_a: Tenant, end_user_a: User, api_for: ApiFor
) -> None:
    client = api_for(end_user_a)
    url = "/api/v1/t/acme/notifications/preferences"
    assert client.get(url).json() == {"email_opt_out": False, "muted_events": []}
    put = client.put(
        url, {"email_opt_out": True, "muted_events": ["record.commented"]}, content_type="application/json"
    )
    assert put.status_code == 200
    assert client.get(url).json() == {"email_opt_out": True, "muted_events": ["record.commented"]}
    bad = client.put(
        url, {"email_opt_out": False, "muted_events": ["sla.breached"]}, content_type="application/json"
    )
    assert bad.status_code == 422 and bad["Content-Type"] == PROBLEM
    assert bad.json()["errors"][0]["field"] == "muted_events"
    with tenant_context(tenant_a):
        assert list(NotificationPreference.objects.values_list("email_opt_out", "muted_events")) == [
            (True, ["record.commented"])
        ]


def test_webhook_admin_shows_the_secret_once_lists_logs_and_deletes(
    tenant_a: Tenant, tech_a: User, api_for: ApiFor, provider: Any
) -> None:
    boss = make_user("boss@northwind.example")
    tenant_grant(
        membership=provider_membership_set(user=boss, provider=provider, role="admin"), tenant=tenant_a
    )
    client = api_for(boss)
    created = client.post(
        "/api/v1/t/acme/webhooks",
        {"url": "https://1.1.1.1/hooks", "event_types": ["sla.breached", "record.assigned"]},
        content_type="application/json",
    )
    assert created.status_code == 201
    body = created.json()
    assert body["secret"].startswith("whsec_")
    assert body["event_types"] == ["record.assigned", "sla.breached"]
    listed = client.get("/api/v1/t/acme/webhooks").json()
    assert [e["id"] for e in listed] == [body["id"]]
    assert (
        "secret" not in listed[0]
        and "secret" not in client.get(f"/api/v1/t/acme/webhooks/{body['id']}").json()
    )

    with tenant_context(tenant_a):
        notification_emit(**emit_args(key="k", event="sla.breached"))
    log = client.get(f"/api/v1/t/acme/webhooks/{body['id']}/deliveries").json()
    assert [(d["event"]["event"], d["state"], d["attempt_count"], d["attempts"]) for d in log] == [
        ("sla.breached", "pending", 0, [])
    ]

    technician = api_for(tech_a)  # technicians read, admins change
    assert technician.get("/api/v1/t/acme/webhooks").status_code == 200
    denied = technician.delete(f"/api/v1/t/acme/webhooks/{body['id']}")
    assert denied.status_code == 403 and denied["Content-Type"] == PROBLEM
    assert client.delete(f"/api/v1/t/acme/webhooks/{body['id']}").status_code == 204
    with tenant_context(tenant_a):
        assert WebhookEndpoint.objects.count() == 0


def test_bad_webhook_input_is_a_422_problem_and_end_users_are_refused(
    tenant_a: Tenant, end_user_a: User, api_for: ApiFor, provider: Any
) -> None:
    boss = make_user("boss@northwind.example")
    tenant_grant(
        membership=provider_membership_set(user=boss, provider=provider, role="admin"), tenant=tenant_a
    )
    client = api_for(boss)
    for body, field in (
        ({"url": "not a url", "event_types": ["sla.breached"]}, "url"),
        ({"url": "http://localhost/x", "event_types": ["sla.breached"]}, "url"),
        ({"url": "https://1.1.1.1/x", "event_types": ["ticket.eaten"]}, "event_types"),
    ):
        answer = client.post("/api/v1/t/acme/webhooks", body, content_type="application/json")
        assert answer.status_code == 422 and answer["Content-Type"] == PROBLEM, body
        assert [e["field"] for e in answer.json()["errors"]] == [field]
    refused = api_for(end_user_a).post(
        "/api/v1/t/acme/webhooks",
        {"url": "https://1.1.1.1/x", "event_types": ["sla.breached"]},
        content_type="application/json",
    )
    assert refused.status_code == 403
    assert api_for(end_user_a).get("/api/v1/t/acme/webhooks").status_code == 403
    with tenant_context(tenant_a):
        assert WebhookEndpoint.objects.count() == 0
        assert Person.objects.filter(email="alice@acme.example").exists()
