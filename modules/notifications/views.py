"""Console and portal pages of in-app notifications: the list, mark read (htmx, or a plain POST that
redirects back) and the email preferences. Console: /t/<tenant>/notifications/; portal: /notifications/.
Console only: the tenant's notification settings (email branding) and webhook endpoints with their
delivery logs, under /t/<tenant>/notifications/settings/ and .../webhooks/."""

from __future__ import annotations

import uuid
from typing import Any

from django import forms
from django.http import Http404, HttpResponse, HttpResponseRedirect
from django.shortcuts import redirect, render
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST

from controlplane.http import TenantRequest, form_errors_apply, request_actor
from controlplane.permissions import P
from controlplane.problems import DomainError, NotFound
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
    if request.htmx:
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
    if request.htmx:
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


# Admin pages (console only): the tenant's email branding and its webhook endpoints. Technicians and
# admins read them; admins (provider owners and admins, client admins) change them; end users are refused.


def _denied(request: TenantRequest, exc: DomainError) -> HttpResponse:
    return render(request, "notifications/denied.html", {"error": exc}, status=exc.status)


class BrandingForm(forms.Form):
    """Free text: the service checks each field and its errors are shown next to them."""

    sender_name = forms.CharField(required=False, label="Sender name (empty: the client's name)")
    reply_to = forms.CharField(required=False, label="Reply-to address")
    accent_colour = forms.CharField(required=False, label="Accent colour (#rrggbb)")
    logo_url = forms.CharField(required=False, label="Logo URL (https)")


def notification_settings(request: TenantRequest, tenant: str) -> HttpResponse:
    """The tenant's notification settings: email branding (admins change it with POST; technicians read
    it), with links to the webhook endpoints and the actor's own email preferences. 403 for end users."""
    actor = request_actor(request)
    try:
        current = selectors.notification_settings_get(actor=actor)
    except DomainError as exc:
        return _denied(request, exc)
    initial = {f: getattr(current, f) for f in BrandingForm.base_fields}
    form = BrandingForm(request.POST or None, initial=initial)
    status, saved = 200, False
    if request.method == "POST":
        status = 422
        if form.is_valid():
            try:
                current = services.notification_settings_set(actor=actor, **form.cleaned_data)
            except DomainError as exc:
                if exc.status == 403:
                    return _denied(request, exc)
                form_errors_apply(form, exc)
                status = exc.status
            else:
                status, saved = 200, True
                form = BrandingForm(initial={f: getattr(current, f) for f in BrandingForm.base_fields})
    context = {"form": form, "branding": current, "admin": actor.may(P.CONFIG_MANAGE), "saved": saved}
    return render(request, "notifications/settings.html", context, status=status)


class WebhookEndpointForm(forms.Form):
    url = forms.CharField(label="URL (https, a public address)", max_length=500)
    event_types = forms.MultipleChoiceField(
        required=False,
        widget=forms.CheckboxSelectMultiple,
        choices=[(e, e) for e in EVENT_TYPES],
        label="Events",
    )
    description = forms.CharField(required=False, max_length=200)


def webhook_list(request: TenantRequest, tenant: str) -> HttpResponse:
    """The tenant's webhook endpoints; admins add one here (POST), after which the page shows its signing
    secret, once. Technicians read; end users and technicians posting get 403 and nothing is written."""
    actor = request_actor(request)
    try:
        endpoints = list(selectors.webhook_endpoint_list(actor=actor))
    except DomainError as exc:
        return _denied(request, exc)
    form = WebhookEndpointForm(request.POST or None)
    status = 200
    if request.method == "POST":
        status = 422
        if form.is_valid():
            try:
                endpoint, secret = services.webhook_endpoint_create(actor=actor, **form.cleaned_data)
            except DomainError as exc:
                if exc.status == 403:
                    return _denied(request, exc)
                form_errors_apply(form, exc)
                status = exc.status
            else:  # the only time the secret is shown: render it now, never store it in a session
                context = {"endpoint": endpoint, "secret": secret}
                return render(request, "notifications/webhook_created.html", context, status=201)
    context = {"endpoints": endpoints, "form": form, "admin": actor.may(P.CONFIG_MANAGE)}
    return render(request, "notifications/webhooks.html", context, status=status)


def _endpoint(actor: Actor, endpoint_id: uuid.UUID) -> Any:
    """The endpoint of this tenant; Http404 for a missing one or another tenant's, as for any id."""
    try:
        return selectors.webhook_endpoint_get(actor=actor, endpoint_id=endpoint_id)
    except NotFound as exc:
        raise Http404(str(exc)) from exc


def webhook_detail(request: TenantRequest, tenant: str, endpoint_id: uuid.UUID) -> HttpResponse:
    """One endpoint and its delivery log, newest first (100 at most): each delivery's event, state,
    attempts (time, status code, response excerpt, error) and next attempt. htmx gets the log only."""
    actor = request_actor(request)
    try:
        endpoint = _endpoint(actor, endpoint_id)
        deliveries = list(selectors.webhook_delivery_list(actor=actor, endpoint=endpoint)[:PAGE_SIZE])
    except DomainError as exc:
        return _denied(request, exc)
    context = {"endpoint": endpoint, "deliveries": deliveries, "admin": actor.may(P.CONFIG_MANAGE)}
    template = "notifications/_deliveries.html" if request.htmx else "notifications/webhook.html"
    return render(request, template, context)


@require_POST
def webhook_set_active(request: TenantRequest, tenant: str, endpoint_id: uuid.UUID) -> HttpResponse:
    """Disable (``active=0``) or re-enable (``active=1``) an endpoint (admins). htmx gets the endpoint's
    updated row; a plain POST goes back to the list."""
    actor = request_actor(request)
    try:
        endpoint = _endpoint(actor, endpoint_id)
        services.webhook_endpoint_set_active(
            actor=actor, endpoint=endpoint, active=request.POST.get("active") == "1"
        )
    except DomainError as exc:
        return _denied(request, exc)
    if request.htmx:
        return render(
            request, "notifications/_webhook_row.html", {"e": endpoint, "admin": actor.may(P.CONFIG_MANAGE)}
        )
    return redirect("notification_webhooks", tenant=tenant)


@require_POST
def webhook_delete(request: TenantRequest, tenant: str, endpoint_id: uuid.UUID) -> HttpResponse:
    """Remove an endpoint and its delivery log (admins). htmx gets an empty answer (the row goes); a
    plain POST goes back to the list."""
    actor = request_actor(request)
    try:
        services.webhook_endpoint_delete(actor=actor, endpoint=_endpoint(actor, endpoint_id))
    except DomainError as exc:
        return _denied(request, exc)
    if request.htmx:
        return HttpResponse("")
    return redirect("notification_webhooks", tenant=tenant)
