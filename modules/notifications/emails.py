"""Outbound notification email: templates per event and language, the tenant's branding, and the
threading headers inbound email relies on (brief "Email threading"; RFC 5322 Message-ID/References,
RFC 3834 Auto-Submitted)."""

from __future__ import annotations

from email.utils import formataddr
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from django.conf import settings
from django.core.mail import EmailMultiAlternatives, get_connection
from django.db import connection
from django.template import TemplateDoesNotExist
from django.template.loader import get_template, render_to_string
from django.utils import timezone

from .models import EmailDelivery, NotificationEvent, NotificationSettings

LANGUAGES = ("en", "de")
DEFAULT_LANGUAGE = "en"
# State names in the languages shipped; a state without a translation shows its code's English label.
STATE_LABELS = {
    "en": {
        "new": "New",
        "in_progress": "In progress",
        "on_hold": "On hold",
        "resolved": "Resolved",
        "closed": "Closed",
        "canceled": "Canceled",
        "cancelled": "Cancelled",
        "submitted": "Submitted",
        "pending_approval": "Pending approval",
        "approved": "Approved",
        "rejected": "Rejected",
        "fulfilled": "Fulfilled",
    },
    "de": {
        "new": "Neu",
        "in_progress": "In Bearbeitung",
        "on_hold": "Zurückgestellt",
        "resolved": "Gelöst",
        "closed": "Geschlossen",
        "canceled": "Abgebrochen",
        "cancelled": "Storniert",
        "submitted": "Eingereicht",
        "pending_approval": "Genehmigung ausstehend",
        "approved": "Genehmigt",
        "rejected": "Abgelehnt",
        "fulfilled": "Erfüllt",
    },
}


def language_for(locale: str) -> str:
    """The template language for a tenant locale (``de-at`` -> ``de``); English when none is shipped."""
    language = (locale or "").replace("_", "-").split("-")[0].lower()
    return language if language in LANGUAGES else DEFAULT_LANGUAGE


def state_label(language: str, state: str) -> str:
    return STATE_LABELS.get(language, {}).get(state) or STATE_LABELS["en"].get(state) or state


def _template_base(language: str, event: str) -> str:
    """``notifications/email/<language>/<event>``: the event's own templates in the language, else in
    English, else the generic ones (an event type added later without templates still mails)."""
    for lang, name in (
        (language, event),
        (DEFAULT_LANGUAGE, event),
        (language, "generic"),
        (DEFAULT_LANGUAGE, "generic"),
    ):
        base = f"notifications/email/{lang}/{name}"
        try:
            get_template(f"{base}.txt")
        except TemplateDoesNotExist:
            continue
        return base
    raise TemplateDoesNotExist(f"notifications/email/*/{event}.txt")


def record_url(*, event: NotificationEvent, audience: str = "console") -> str:
    """An absolute link to the record: the console page (``CONSOLE_BASE_URL``/t/<slug>/...) or, for the
    ``portal`` audience (callers), the incident's page on the tenant's portal host. Empty when unknown."""
    from controlplane.problems import InvalidInput
    from modules.records.registry import kind_get

    tenant = getattr(connection, "tenant", None)
    base = settings.CONSOLE_BASE_URL.rstrip("/")
    try:
        kind = kind_get(event.record_type)
    except InvalidInput:
        return ""
    if tenant is None or not hasattr(tenant, "slug"):
        return ""
    if audience == "portal" and event.record_type == "incident":
        domain = tenant.get_primary_domain()
        if domain is not None:
            parts = urlsplit(base)
            port = f":{parts.port}" if parts.port else ""
            return f"{parts.scheme}://{domain.domain}{port}/incidents/{event.number}/"
    return f"{base}/t/{tenant.slug}/{kind.console_path.format(number=event.number)}"


def email_context(*, event: NotificationEvent, person: Any, language: str) -> dict[str, Any]:
    """What every notification template sees: ``tenant`` (name, slug), ``brand`` (sender name, accent
    colour, logo URL), ``event``, ``person`` (the reader), ``actor`` (who caused it, or None),
    ``occurred_at`` (in the tenant's time zone), ``url``, ``survey_url`` (the portal's satisfaction survey
    when an incident was resolved and the reader is its caller, else empty), ``state_label`` and
    ``previous_state_label`` in the language, and the event's ``context``."""
    tenant = getattr(connection, "tenant", None)
    brand = NotificationSettings.objects.filter(pk=1).first() or NotificationSettings()
    zone = ZoneInfo(getattr(tenant, "time_zone", "UTC") or "UTC")
    ctx = event.context or {}
    url = record_url(event=event, audience=ctx.get("audience", "console"))
    resolved_for_caller = (
        event.record_type == "incident" and ctx.get("state") == "resolved" and ctx.get("audience") == "portal"
    )
    # The portal's survey page (modules.incidents portal_urls: /incidents/<number>/survey/).
    survey_url = (
        f"{url}survey/" if resolved_for_caller and not url.startswith(settings.CONSOLE_BASE_URL) else ""
    )
    return {
        "tenant": tenant,
        "tenant_name": getattr(tenant, "name", ""),
        "brand": brand,
        "sender_name": brand.sender_name or getattr(tenant, "name", ""),
        "event": event,
        "person": person,
        "actor": event.actor_person,
        "occurred_at": event.occurred_at.astimezone(zone),
        "url": url,
        "survey_url": survey_url,
        "context": ctx,
        "state_label": state_label(language, str(ctx.get("state", ""))),
        "previous_state_label": state_label(language, str(ctx.get("previous_state", ""))),
        "language": language,
    }


def email_message_build(*, delivery: EmailDelivery) -> EmailMultiAlternatives:
    """The email of one delivery: subject ``[NUMBER] ...``, text and HTML bodies from the event's
    templates in the tenant's language (Tenant.locale), From ``"<sender name>" <DEFAULT_FROM_EMAIL>``,
    Reply-To from the tenant's settings, and the threading headers: ``Message-ID`` (fixed per delivery,
    ``<uuid4hex.record_id@EMAIL_MESSAGE_DOMAIN>``), ``References`` and ``In-Reply-To``
    (``<record.{record_id}@EMAIL_MESSAGE_DOMAIN>``), ``Auto-Submitted: auto-generated`` (RFC 3834) and
    ``X-Auto-Response-Suppress: All`` (no out-of-office replies from Exchange)."""
    event = delivery.event
    tenant = getattr(connection, "tenant", None)
    language = language_for(getattr(tenant, "locale", ""))
    context = email_context(event=event, person=delivery.person, language=language)
    base = _template_base(language, event.event)
    with timezone.override(context["occurred_at"].tzinfo):  # dates in the tenant's time zone
        subject = " ".join(render_to_string(f"{base}.subject.txt", context).split())
        text = render_to_string(f"{base}.txt", context)
        html = render_to_string(f"{base}.html", context)
    brand = context["brand"]
    thread = f"<record.{event.record_id}@{settings.EMAIL_MESSAGE_DOMAIN}>"
    headers = {
        "Message-ID": delivery.message_id,
        "References": thread,
        "In-Reply-To": thread,
        "Auto-Submitted": "auto-generated",
        "X-Auto-Response-Suppress": "All",
    }
    message = EmailMultiAlternatives(
        subject=f"[{event.number}] {subject}",
        body=text,
        from_email=formataddr((context["sender_name"], settings.DEFAULT_FROM_EMAIL)),
        to=[delivery.address],
        reply_to=[brand.reply_to] if brand.reply_to else None,
        headers=headers,
        connection=get_connection(timeout=settings.EMAIL_TIMEOUT),
    )
    message.attach_alternative(html, "text/html")
    return message
