"""Notification email through Django's SMTP backend to a real SMTP server (aiosmtpd): headers for
threading, the tenant's branding and language, preferences, and sending once."""

from __future__ import annotations

import datetime as dt
import re

from django.utils import timezone
from django_tenants.utils import tenant_context

from conftest import actor_in
from controlplane.accounts.models import User
from modules.incidents.services import incident_comment, incident_create, incident_transition, incident_update
from modules.notifications.models import EmailDelivery, NotificationPreference, NotificationSettings
from modules.notifications.services import email_delivery_send, notification_emit
from modules.notifications.tasks import email_delivery_send_task
from modules.people.models import Person
from tenants.models import Tenant

from .conftest import Mailbox, free_port
from .factories import RECORD_ID, emit_args


def send_all() -> int:
    """Send every pending email delivery of the current tenant, as the worker would."""
    return sum(
        email_delivery_send(delivery_id=pk) for pk in EmailDelivery.objects.values_list("pk", flat=True)
    )


def test_assignment_email_has_threading_headers_branding_and_the_number_in_the_subject(
    smtp: Mailbox, tenant_a: Tenant, tech_a: User
) -> None:
    with tenant_context(tenant_a):
        actor = actor_in(tenant_a, tech_a)
        NotificationSettings.objects.create(
            sender_name="Acme IT",
            reply_to="it-help@acme.example",
            accent_colour="#c0ffee",
            logo_url="https://cdn.acme.example/logo.png",
        )
        carol = Person.objects.create(display_name="Carol Jones", email="carol@acme.example")
        incident = incident_create(actor=actor, short_description="VPN drops every hour")
        incident_update(actor=actor, incident=incident, assigned_to=carol)
        assert send_all() == 1
        message_id = EmailDelivery.objects.get().message_id

    [message] = smtp.messages
    assert smtp.recipients == [["carol@acme.example"]]
    assert message["Subject"] == f"[{incident.number}] Assigned to you: VPN drops every hour"
    assert message["From"] == "Acme IT <desk@northwind.example>"
    assert message["Reply-To"] == "it-help@acme.example"
    assert message["Auto-Submitted"] == "auto-generated"
    assert re.fullmatch(rf"<[0-9a-f]{{32}}\.{incident.pk}@itsm\.localhost>", message["Message-ID"].strip())
    assert message["References"] == message["In-Reply-To"] == f"<record.{incident.pk}@itsm.localhost>"
    assert message["Message-ID"].strip() == message_id
    text, html = Mailbox.text(message), Mailbox.html(message)
    assert text.startswith("Hello Carol Jones,\n\n")
    assert f"{incident.number} has been assigned to you by {tech_a.full_name}." in text
    assert f"Open: http://127.0.0.1:8000/t/acme/incidents/{incident.number}/" in text
    assert "background:#c0ffee" in html
    assert '<img src="https://cdn.acme.example/logo.png" alt="Acme Corp"' in html
    assert "Acme Corp · IT service desk." in html


def test_the_tenant_s_language_is_used_and_unknown_languages_fall_back_to_english(
    smtp: Mailbox, tenant_a: Tenant, tenant_b: Tenant
) -> None:
    tenant_a.locale, tenant_b.locale = "de-de", "fr-fr"
    tenant_a.save(update_fields=["locale"])
    tenant_b.save(update_fields=["locale"])
    for tenant in (tenant_a, tenant_b):
        with tenant_context(tenant):
            carol = Person.objects.create(display_name="Carol", email=f"carol@{tenant.slug}.example")
            notification_emit(**emit_args(key="k", event="sla.breached"), persons=[carol])
            assert send_all() == 1

    german, french = smtp.messages
    assert german["Subject"] == "[INC0000042] SLA verletzt: Printer on fire"
    assert Mailbox.text(german).startswith("Hallo Carol,\n\nDas SLA-Ziel von INC0000042 wurde verletzt.")
    assert "IT-Servicedesk" in Mailbox.html(german)
    assert "Öffnen: http://127.0.0.1:8000/t/acme/incidents/INC0000042/" in Mailbox.text(german)
    assert french["Subject"] == "[INC0000042] SLA breached: Printer on fire"
    assert f"<record.{RECORD_ID}@itsm.localhost>" == french["References"]


def test_comment_email_reaches_the_caller_and_respects_opt_out_but_critical_events_always_go(
    smtp: Mailbox, tenant_a: Tenant, tech_a: User
) -> None:
    with tenant_context(tenant_a):
        actor = actor_in(tenant_a, tech_a)
        carol = Person.objects.create(display_name="Carol", email="carol@acme.example")
        incident = incident_create(actor=actor, short_description="Laptop slow", caller=carol)
        incident_comment(actor=actor, incident=incident, body="Please restart & try again <today>.")
        assert send_all() == 1
        NotificationPreference.objects.create(person=carol, email_opt_out=True)
        incident_comment(actor=actor, incident=incident, body="Did that help?")
        notification_emit(**emit_args(key="breach", event="sla.breached"), persons=[carol])
        assert send_all() == 1

    first, critical = smtp.messages
    assert first["Subject"] == f"[{incident.number}] New comment: Laptop slow"
    assert "Please restart & try again <today>." in Mailbox.text(first)
    assert "Please restart &amp; try again &lt;today&gt;." in Mailbox.html(first)
    assert f"http://acme.localhost:8000/incidents/{incident.number}/" in Mailbox.text(first)  # the portal
    assert critical["Subject"] == "[INC0000042] SLA breached: Printer on fire"


def test_the_resolution_email_asks_the_caller_for_the_survey_and_other_changes_do_not(
    smtp: Mailbox, tenant_a: Tenant, tech_a: User
) -> None:
    with tenant_context(tenant_a):
        actor = actor_in(tenant_a, tech_a)
        carol = Person.objects.create(display_name="Carol", email="carol@acme.example")
        incident = incident_create(actor=actor, short_description="Printer jams", caller=carol)
        incident_transition(actor=actor, incident=incident, action="start")
        incident_transition(
            actor=actor,
            incident=incident,
            action="resolve",
            resolution_code="solved_permanently",
            resolution_notes="New roller.",
        )
        assert send_all() == 2

    started, resolved = smtp.messages
    survey = f"http://acme.localhost:8000/incidents/{incident.number}/survey/"
    assert "survey" not in Mailbox.text(started) and "survey" not in Mailbox.html(started)
    assert f"How did we do? Rate the resolution (1\N{EN DASH}5): {survey}" in Mailbox.text(resolved)
    assert f'<a href="{survey}">Rate the resolution</a>' in Mailbox.html(resolved)


def test_the_same_task_run_twice_sends_once(smtp: Mailbox, tenant_a: Tenant) -> None:
    with tenant_context(tenant_a):
        carol = Person.objects.create(display_name="Carol", email="carol@acme.example")
        notification_emit(**emit_args(key="k"), persons=[carol])
        delivery = EmailDelivery.objects.get()
        first = email_delivery_send_task.apply(kwargs={"delivery_id": delivery.pk})
        second = email_delivery_send_task.apply(kwargs={"delivery_id": delivery.pk})
        delivery.refresh_from_db()

    assert (first.result, second.result) == (True, False)
    assert len(smtp.messages) == 1
    assert (delivery.state, delivery.attempts) == ("sent", 1)


def test_an_smtp_server_that_is_down_is_retried_later_and_the_mail_goes_once(
    smtp: Mailbox, settings: object, tenant_a: Tenant
) -> None:
    up_port = settings.EMAIL_PORT  # type: ignore[attr-defined]
    settings.EMAIL_PORT = free_port()  # type: ignore[attr-defined]  # nobody listens there
    with tenant_context(tenant_a):
        carol = Person.objects.create(display_name="Carol", email="carol@acme.example")
        notification_emit(**emit_args(key="k"), persons=[carol])
        t0 = timezone.now()
        delivery = EmailDelivery.objects.get()
        assert email_delivery_send(delivery_id=delivery.pk, now=t0) is False
        delivery.refresh_from_db()
        assert (delivery.state, delivery.attempts) == ("pending", 1)
        assert delivery.next_attempt_at == t0 + dt.timedelta(seconds=30)
        assert delivery.last_error.startswith("ConnectionRefusedError")

        settings.EMAIL_PORT = up_port  # type: ignore[attr-defined]
        assert email_delivery_send(delivery_id=delivery.pk, now=t0 + dt.timedelta(seconds=29)) is False
        assert smtp.messages == []  # not due yet
        assert email_delivery_send(delivery_id=delivery.pk, now=t0 + dt.timedelta(seconds=30)) is True
        assert email_delivery_send(delivery_id=delivery.pk, now=t0 + dt.timedelta(seconds=90)) is False
        delivery.refresh_from_db()

    assert len(smtp.messages) == 1
    assert smtp.messages[0]["Message-ID"].strip() == delivery.message_id
    assert (delivery.state, delivery.attempts, delivery.last_error) == ("sent", 2, "")
