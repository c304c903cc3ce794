"""Notification reads, scoped to the actor: people see their own in-app notifications and preferences;
technicians and admins read webhook endpoints and their delivery logs (admins change them)."""

from __future__ import annotations

import uuid
from typing import Any

from django.core.exceptions import ValidationError
from django.db.models import QuerySet

from controlplane.permissions import P
from controlplane.problems import NotFound, PermissionDenied
from modules.records.actor import Actor

from .models import (
    Notification,
    NotificationPreference,
    NotificationSettings,
    WebhookDelivery,
    WebhookEndpoint,
)


def notification_list(*, actor: Actor, unread_only: bool = False) -> QuerySet[Notification]:
    """The actor's in-app notifications, newest first (none for an actor without a person)."""
    if actor.person_id is None:
        return Notification.objects.none()
    qs = Notification.objects.filter(person_id=actor.person_id).select_related("event", "event__actor_person")
    return qs.filter(read_at=None) if unread_only else qs


def notification_unread_count(*, actor: Actor) -> int:
    if actor.person_id is None:
        return 0
    return Notification.objects.filter(person_id=actor.person_id, read_at=None).count()


def _by_id(qs: QuerySet[Any], value: uuid.UUID | str, what: str) -> Any:
    try:
        found = qs.filter(pk=value).first()
    except (ValidationError, ValueError):
        found = None
    if found is None:
        raise NotFound(f"no {what} {value}")
    return found


def notification_get(*, actor: Actor, notification_id: uuid.UUID | str) -> Notification:
    """One of the actor's notifications. Raises NotFound for anyone else's (other tenants' included)."""
    return _by_id(notification_list(actor=actor), notification_id, "notification")


def preference_get(*, actor: Actor) -> NotificationPreference:
    """The actor's email preference; an unsaved default (all email) when never set."""
    found = None
    if actor.person_id is not None:
        found = NotificationPreference.objects.filter(person_id=actor.person_id).first()
    return found or NotificationPreference(person=actor.person)


def notification_settings_get(*, actor: Actor) -> NotificationSettings:
    """The tenant's email branding (unsaved defaults when never set). Technicians and admins only."""
    _require_staff(actor)
    return NotificationSettings.objects.filter(pk=1).first() or NotificationSettings(pk=1)


def _require_staff(actor: Actor) -> None:
    if not actor.may(P.CONFIG_READ):
        raise PermissionDenied("only technicians and admins see this")


def webhook_endpoint_list(*, actor: Actor) -> QuerySet[WebhookEndpoint]:
    """The tenant's webhook endpoints, oldest first. Technicians and admins (PermissionDenied otherwise)."""
    _require_staff(actor)
    return WebhookEndpoint.objects.all()


def webhook_endpoint_get(*, actor: Actor, endpoint_id: uuid.UUID | str) -> WebhookEndpoint:
    """One endpoint of this tenant. Raises NotFound for a missing one (other tenants' included)."""
    return _by_id(webhook_endpoint_list(actor=actor), endpoint_id, "webhook endpoint")


def webhook_delivery_list(*, actor: Actor, endpoint: WebhookEndpoint) -> QuerySet[WebhookDelivery]:
    """An endpoint's delivery log, newest first, with each delivery's event."""
    _require_staff(actor)
    return WebhookDelivery.objects.filter(endpoint=endpoint).select_related("event")
