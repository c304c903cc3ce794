"""Console shell pages on the console host: the provider home, the client switcher, the tenant entry
point, the profile (time zone) and personal API tokens."""

from __future__ import annotations

import contextlib
from typing import Any

from django import forms
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone

from controlplane.accounts.models import ApiToken, User
from controlplane.accounts.selectors import mfa_status_text, security_event_list, tenant_list_for_user
from controlplane.accounts.services import (
    TOKEN_MAX_DAYS,
    api_token_create,
    api_token_revoke,
    client_ip,
    user_time_zone_set,
)
from controlplane.http import form_errors_apply
from controlplane.problems import DomainError
from controlplane.zones import zone_choices
from tenants.models import Tenant

from . import selectors
from .middleware import recent_tenant_ids


@login_required
def home(request: HttpRequest) -> HttpResponse:
    """The provider home: every client this user may enter with open, breached and due-within-4-h
    counts and the last activity (``?q=`` filters by name, ``?sort=name|open|breached``). An htmx
    request from the filter box gets the same page; htmx keeps only the table (``hx-select``)."""
    assert isinstance(request.user, User)
    q = request.GET.get("q", "")[:100]
    sort = request.GET.get("sort", "name")
    if sort not in selectors.OVERVIEW_SORTS:
        sort = "name"
    rows = selectors.client_overview(user=request.user, now=timezone.now(), q=q, sort=sort)
    return render(request, "console/home.html", {"rows": rows, "q": q, "sort": sort})


@login_required
def switch(request: HttpRequest) -> HttpResponse:
    """The client switcher: clients this user may enter matching ``?q=``, recently entered first. Each
    link keeps the practice section of ``?from=`` (the page the switcher was opened on) when the client
    has it. htmx (the header's combobox) gets the list alone; without JavaScript, a full page."""
    assert isinstance(request.user, User)
    q = request.GET.get("q", "")[:100]
    from_path = request.GET.get("from", "")[:300]
    recent = recent_tenant_ids(request)
    tenants = selectors.tenant_switch_candidates(user=request.user, q=q, recent_ids=recent)
    choices = [
        {
            "tenant": t,
            "url": selectors.switch_path(slug=t.slug, from_path=from_path),
            "recent": t.pk in recent,
        }
        for t in tenants
    ]
    template = "console/_switch_results.html" if getattr(request, "htmx", False) else "console/switch.html"
    return render(request, template, {"choices": choices, "q": q, "from_path": from_path})


def tenant_home(request: HttpRequest, tenant: str) -> HttpResponse:
    """Entering a tenant lands on its incident queue (the routing middleware checked access)."""
    return redirect("incident_list", tenant=tenant)


class ProfileForm(forms.Form):
    time_zone = forms.ChoiceField(
        label="Time zone",
        required=False,
        widget=forms.Select(attrs={"aria-describedby": "tz-help"}),
        help_text="Dates and deadlines are shown in this zone. Not set: your browser's zone.",
    )

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        field = self.fields["time_zone"]
        assert isinstance(field, forms.ChoiceField)
        field.choices = [("", "Not set (use my browser's zone)"), *zone_choices()]


@login_required
def profile(request: HttpRequest) -> HttpResponse:
    """The signed-in user's profile: their time zone (an IANA name, or unset), password change, sign out
    everywhere and their recent sign-ins."""
    assert isinstance(request.user, User)
    if request.method == "POST":
        form = ProfileForm(request.POST)
        if form.is_valid():
            try:
                user_time_zone_set(user=request.user, time_zone=form.cleaned_data["time_zone"])
            except DomainError as exc:
                form_errors_apply(form, exc)
            else:
                return redirect("console_profile")
    else:
        form = ProfileForm(initial={"time_zone": request.user.time_zone})
    return render(
        request,
        "console/profile.html",
        {
            "form": form,
            "active_zone": timezone.get_current_timezone_name(),
            "now": timezone.now(),
            "events": security_event_list(user=request.user, limit=10),
            "mfa_status": mfa_status_text(user=request.user),
        },
    )


class TokenForm(forms.Form):
    """A new personal API token: its name, scope (every client or chosen ones), access and lifetime."""

    name = forms.CharField(max_length=100)
    access = forms.ChoiceField(choices=ApiToken.Access.choices, initial=ApiToken.Access.READ)
    all_tenants = forms.BooleanField(
        required=False, label="Every client I may enter (now and later)", initial=False
    )
    tenants: forms.ModelMultipleChoiceField[Tenant] = forms.ModelMultipleChoiceField(
        queryset=Tenant.objects.none(),
        required=False,
        widget=forms.CheckboxSelectMultiple,
        label="Or only these clients",
    )
    expires_in_days = forms.IntegerField(
        min_value=1, max_value=TOKEN_MAX_DAYS, initial=90, label="Expires in (days)"
    )

    def __init__(self, *args: Any, user: User, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["tenants"].queryset = tenant_list_for_user(user=user)  # type: ignore[attr-defined]  # per user

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if not data.get("all_tenants") and not data.get("tenants"):
            self.add_error("tenants", "Choose at least one client, or every client.")
        return data


@login_required
def tokens(request: HttpRequest) -> HttpResponse:
    """Personal API tokens: list, create (secret shown once; scope, access, expiry), revoke. Creating and
    revoking are recorded in the security audit (``token.created``, ``token.revoked``)."""
    assert isinstance(request.user, User)
    created = None
    form = TokenForm(user=request.user)
    if request.method == "POST":
        ip = client_ip(request)
        if "revoke" in request.POST:
            with contextlib.suppress(ValueError):  # not a token id: nothing to revoke
                api_token_revoke(user=request.user, token_id=int(request.POST["revoke"]), ip=ip)
            return redirect("console_tokens")
        form = TokenForm(request.POST, user=request.user)
        if form.is_valid():
            data = form.cleaned_data
            try:
                _, created = api_token_create(
                    user=request.user,
                    name=data["name"],
                    access=data["access"],
                    expires_in_days=data["expires_in_days"],
                    tenant_ids=None if data["all_tenants"] else [t.pk for t in data["tenants"]],
                    ip=ip,
                )
                form = TokenForm(user=request.user)
            except DomainError as exc:
                form_errors_apply(form, exc, aliases={"tenant_ids": "tenants"})
    rows = list(ApiToken.objects.filter(user=request.user, revoked_at__isnull=True).order_by("-created_at"))
    names = dict(
        Tenant.objects.filter(pk__in={i for t in rows for i in t.tenant_ids}).values_list("pk", "name")
    )
    for token in rows:
        token.scope_names = [names.get(i, "a removed client") for i in token.tenant_ids]  # type: ignore[attr-defined]
    status = 400 if form.errors else 200
    return render(
        request, "console/tokens.html", {"tokens": rows, "created": created, "form": form}, status=status
    )
