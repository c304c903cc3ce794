"""Account pages: sign out everywhere (console and portal hosts) and the two-factor requirement of a
provider (console) and of a tenant (portal, client admins). Entry points: parse, call one service."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import messages
from django.contrib.auth import logout
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from controlplane.http import TenantRequest, form_errors_apply, portal_page, request_actor
from controlplane.problems import DomainError

from .adapter import where
from .models import ProviderMembership, ProviderRole, TenantRole, User
from .services import (
    client_ip,
    provider_mfa_requirement_set,
    tenant_mfa_requirement_set,
    user_sign_out_everywhere,
)


@require_POST
@login_required
def sign_out_everywhere(request: HttpRequest) -> HttpResponse:
    """POST: end every session of the signed-in user on every host (this one too), then show the
    sign-in page with a message. Console: ``/me/sign-out-everywhere/``; portal:
    ``/account/sign-out-everywhere/``."""
    user = request.user
    assert isinstance(user, User)
    user_sign_out_everywhere(user=user, ip=client_ip(request), tenant_id=where(request)["tenant_id"])
    logout(request)
    messages.success(request, "You were signed out on every device and browser.")
    return redirect("account_login")


class MfaPolicyForm(forms.Form):
    required = forms.BooleanField(required=False)

    def __init__(self, *args: Any, label: str, help_text: str, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        field = self.fields["required"]
        field.label, field.help_text = label, help_text
        field.widget.attrs["aria-describedby"] = "required-help"


@login_required
def provider_security(request: HttpRequest) -> HttpResponse:
    """Console ``/provider/security/``: the provider's owners and admins require two-factor
    authentication of its members (403 for anyone else)."""
    user = request.user
    assert isinstance(user, User)
    membership = ProviderMembership.objects.select_related("provider").filter(user=user).first()
    if membership is None or membership.role not in (ProviderRole.OWNER, ProviderRole.ADMIN):
        raise DjangoPermissionDenied("owners and admins only")
    provider = membership.provider
    form = MfaPolicyForm(
        request.POST or None,
        initial={"required": provider.require_mfa_for_technicians},
        label="Require two-factor authentication for technicians",
        help_text="Everyone at your provider (owners, admins, technicians) must set up an authenticator app "
        "before their next page.",
    )
    if request.method == "POST" and form.is_valid():
        try:
            provider_mfa_requirement_set(
                actor=user, provider=provider, required=form.cleaned_data["required"], ip=client_ip(request)
            )
        except DomainError as exc:
            form_errors_apply(form, exc)
        else:
            messages.success(request, "Sign-in policy saved.")
            return redirect("provider_security")
    return render(request, "accounts/provider_security.html", {"form": form, "provider": provider})


@portal_page
def portal_security(request: TenantRequest) -> HttpResponse:
    """Portal ``/security/``: the client admin requires two-factor authentication of the tenant's
    portal users (404 for other roles, as the branding page)."""
    user = request.user
    assert isinstance(user, User)
    actor = request_actor(request)
    tenant = request.portal_tenant
    if actor.role != TenantRole.CLIENT_ADMIN or tenant is None:
        raise Http404("client admins only")
    form = MfaPolicyForm(
        request.POST or None,
        initial={"required": tenant.require_mfa_for_end_users},
        label="Require two-factor authentication for everyone using this portal",
        help_text="Every user of this portal must set up an authenticator app before their next page.",
    )
    if request.method == "POST" and form.is_valid():
        try:
            tenant_mfa_requirement_set(
                actor=user, tenant=tenant, required=form.cleaned_data["required"], ip=client_ip(request)
            )
        except DomainError as exc:
            form_errors_apply(form, exc)
        else:
            messages.success(request, "Sign-in policy saved.")
            return redirect("portal_security")
    return render(request, "accounts/portal_security.html", {"form": form})
