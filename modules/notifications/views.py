"""Console and portal pages of in-app notifications: the list, mark read (htmx, or a plain POST that
redirects back) and the email preferences. Console: /t/<tenant>/notifications/; portal: /notifications/."""

from __future__ import annotations

import uuid
from typing import Any

from django import forms
from django.http import HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST

from controlplane.http import TenantRequest, form_errors_apply, request_actor
from controlplane.problems import DomainError
from modules.records.actor import Actor
from modules.records.registry import kind_get

from . import selectors, services
from .models import CRITICAL_EVENT_TYPES, EVENT_TYPES, Notification

PAGE_SIZE = 100


def notifications_base(request: TenantRequest) -> str:
    """The path the notification pages live under on this host."""
    tenant = getattr(request, "tenant", None)
    if getattr(request, "portal_tenant", None) is not None or tenant is None:
        return "/notifications/"
    return f"/t/{tenant.slug}/notifications/"


def record_link(request: TenantRequest, notification: Notification) -> str:
    """Where a notification leads: the record's console page, or on the portal an incident's page."""
    event = notification.event
    tenant = getattr(request, "tenant", None)
    if getattr(request, "portal_tenant", None) is not None:
        return f"/incidents/{event.number}/" if event.record_type == "incident" else ""
    try:
        kind = kind_get(event.record_type)
    except DomainError:
        return ""
    return f"/t/{tenant.slug}/{kind.console_path.format(number=event.number)}" if tenant else ""


def items_for(request: TenantRequest, notifications: Any) -> list[dict[str, Any]]:
    return [{"n": n, "url": record_link(request, n)} for n in notifications]


def _back(request: TenantRequest) -> HttpResponse:
    """Back to ``next`` when it is a path on this host (never an open redirect), else the list."""
    target = request.POST.get("next", "")
    if not (target and url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()})):
        target = notifications_base(request)
    return HttpResponseRedirect(target)


def notification_list(request: TenantRequest, tenant: str | None = None) -> HttpResponse:
    """The actor's notifications, newest first (``?unread=1``: unread only), 100 at most."""
    actor = request_actor(request)
    unread_only = request.GET.get("unread") == "1"
    notifications = selectors.notification_list(actor=actor, unread_only=unread_only)[:PAGE_SIZE]
    context = {
        "items": items_for(request, notifications),
        "unread_only": unread_only,
        "unread_count": selectors.notification_unread_count(actor=actor),
        "base": notifications_base(request),
        "base_template": "portal_base.html" if request.portal_tenant is not None else "base.html",
    }
    return render(request, "notifications/list.html", context)


@require_POST
def notification_read(
    request: TenantRequest, notification_id: uuid.UUID, tenant: str | None = None
) -> HttpResponse:
    """Mark one notification read. htmx gets the updated item and the bell's count (out of band)."""
    actor = request_actor(request)
    try:
        notification = selectors.notification_get(actor=actor, notification_id=notification_id)
    except DomainError as exc:
        return HttpResponse(exc.detail, status=exc.status)
    services.notification_read(actor=actor, notification=notification)
    if request.headers.get("HX-Request"):
        context = {
            "item": {"n": notification, "url": record_link(request, notification)},
            "base": notifications_base(request),
            "unread_count": selectors.notification_unread_count(actor=actor),
            "oob": True,
        }
        return render(request, "notifications/_item.html", context)
    return _back(request)


@require_POST
def notification_read_all(request: TenantRequest, tenant: str | None = None) -> HttpResponse:
    """Mark all of the actor's notifications read; htmx reloads the page, a plain POST redirects back."""
    services.notification_read_all(actor=request_actor(request))
    if request.headers.get("HX-Request"):
        return HttpResponse(status=204, headers={"HX-Refresh": "true"})
    return _back(request)


class PreferenceForm(forms.Form):
    email_opt_out = forms.BooleanField(
        required=False, label="No email for non-critical events (SLA breaches and approvals still arrive)"
    )
    muted_events = forms.MultipleChoiceField(
        required=False,
        widget=forms.CheckboxSelectMultiple,
        choices=[(e, e) for e in EVENT_TYPES if e not in CRITICAL_EVENT_TYPES],
        label="No email for these events",
    )


def _preferences_page(
    request: TenantRequest, actor: Actor, form: PreferenceForm, saved: bool
) -> HttpResponse:
    context = {
        "form": form,
        "saved": saved,
        "base": notifications_base(request),
        "base_template": "portal_base.html" if request.portal_tenant is not None else "base.html",
    }
    return render(request, "notifications/preferences.html", context, status=422 if form.errors else 200)


def notification_preferences(request: TenantRequest, tenant: str | None = None) -> HttpResponse:
    """The actor's email preferences (GET shows, POST saves)."""
    actor = request_actor(request)
    if request.method == "POST":
        form = PreferenceForm(request.POST)
        if form.is_valid():
            try:
                services.preference_set(actor=actor, **form.cleaned_data)
            except DomainError as exc:
                form_errors_apply(form, exc)
            else:
                return _preferences_page(request, actor, form, saved=True)
        return _preferences_page(request, actor, form, saved=False)
    current = selectors.preference_get(actor=actor)
    form = PreferenceForm(
        initial={"email_opt_out": current.email_opt_out, "muted_events": current.muted_events}
    )
    return _preferences_page(request, actor, form, saved=False)
