"""Account pages: sign out everywhere (console and portal hosts), the two-factor requirement of a
provider (console) and of a tenant (portal, client admins), the provider's team (``/team/``) and a client's
users (``/t/<slug>/users/``). Who may open each is the route's permission (controlplane.routes); the
services check again and audit every change (SecurityEvent). Entry points: parse, call one service."""

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
from tenants.models import Tenant

from . import services
from .adapter import where
from .models import ProviderMembership, ProviderRole, TenantMembership, TenantRole, User
from .selectors import mfa_methods_text, mfa_types_by_user, signs_in_elsewhere_condition
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


def _mine(request: HttpRequest) -> ProviderMembership:
    user = request.user
    assert isinstance(user, User)
    membership = ProviderMembership.objects.select_related("provider").filter(user=user).first()
    if membership is None:
        raise Http404("no team")
    return membership


class MemberAddForm(forms.Form):
    email = forms.EmailField(max_length=254)
    full_name = forms.CharField(max_length=200, required=False, label="Name")
    role = forms.ChoiceField(choices=ProviderRole.choices, initial=ProviderRole.TECHNICIAN)


class MemberForm(forms.Form):
    role = forms.ChoiceField(choices=ProviderRole.choices)
    all_clients = forms.BooleanField(required=False, label="All clients, now and later")
    tenants: forms.ModelMultipleChoiceField[Tenant] = forms.ModelMultipleChoiceField(
        queryset=Tenant.objects.none(),
        required=False,
        widget=forms.CheckboxSelectMultiple,
        label="Granted clients",
    )

    def __init__(self, *args: Any, provider_id: int, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["tenants"].queryset = Tenant.objects.filter(provider_id=provider_id).order_by("name")  # type: ignore[attr-defined]


def team(request: HttpRequest) -> HttpResponse:
    """The team: every member with role, "all clients" and grant count; a form adds a member."""
    mine = _mine(request)
    form = MemberAddForm(request.POST or None)
    status = 200
    if request.method == "POST" and form.is_valid():
        try:
            added = services.provider_member_add(
                actor=mine.user, provider=mine.provider, ip=services.client_ip(request), **form.cleaned_data
            )
        except DomainError as exc:
            form_errors_apply(form, exc)
            status = exc.status
        else:
            messages.success(request, f"{added.user.email} added as {added.get_role_display()}.")
            return redirect("console_team_member", team_member_id=added.pk)
    elif request.method == "POST":
        status = 422
    members = list(
        ProviderMembership.objects.filter(provider=mine.provider)
        .select_related("user")
        .order_by("user__email")
        .prefetch_related("grants__tenant")
    )
    mfa = mfa_types_by_user(user_ids=[m.user_id for m in members])
    for m in members:
        m.mfa_status = mfa_methods_text(mfa.get(m.user_id, []))  # type: ignore[attr-defined]
    return render(
        request, "accounts/team.html", {"members": members, "form": form, "mine": mine}, status=status
    )


def team_member(request: HttpRequest, team_member_id: int) -> HttpResponse:
    """One member: role, "all clients" and the clients granted; remove them from the team."""
    mine = _mine(request)
    member = (
        ProviderMembership.objects.select_related("user")
        .filter(pk=team_member_id, provider=mine.provider)
        .first()
    )
    if member is None:
        raise Http404("no such member")
    initial = {
        "role": member.role,
        "all_clients": member.all_clients,
        "tenants": list(member.grants.values_list("tenant_id", flat=True)),
    }
    form = MemberForm(request.POST or None, initial=initial, provider_id=mine.provider_id)
    status = 200
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            services.provider_member_update(
                actor=mine.user,
                membership=member,
                role=data["role"],
                all_clients=data["all_clients"],
                tenant_ids=[t.pk for t in data["tenants"]],
                ip=services.client_ip(request),
            )
        except DomainError as exc:
            form_errors_apply(form, exc, aliases={"tenant_ids": "tenants"})
            status = exc.status
        else:
            messages.success(request, f"{member.user.email} saved.")
            return redirect("console_team_member", team_member_id=member.pk)
    elif request.method == "POST":
        status = 422
    mfa = mfa_types_by_user(user_ids=[member.user_id]).get(member.user_id, [])
    context = {
        "member": member,
        "form": form,
        "mfa_status": mfa_methods_text(mfa),
        "mfa_resettable": bool(mfa) and member.user_id != mine.user_id,
        "reset_form": MfaResetForm(auto_id="id_reset_%s"),
    }
    return render(request, "accounts/team_member.html", context, status=status)


@require_POST
def team_member_remove(request: HttpRequest, team_member_id: int) -> HttpResponse:
    mine = _mine(request)
    member = (
        ProviderMembership.objects.select_related("user")
        .filter(pk=team_member_id, provider=mine.provider)
        .first()
    )
    if member is None:
        raise Http404("no such member")
    try:
        services.provider_member_remove(actor=mine.user, membership=member, ip=services.client_ip(request))
    except DomainError as exc:
        messages.error(request, exc.detail)
        return redirect("console_team_member", team_member_id=member.pk)
    messages.success(request, f"{member.user.email} removed from the team.")
    return redirect("console_team")


class MfaResetForm(forms.Form):
    """The confirm step of a two-factor reset: the administrator says they checked who asked (help desks
    resetting a second factor for a caller who was not who they said is how the 2023 MGM breach began)."""

    confirm = forms.BooleanField(
        label="I have checked that this request comes from this person (for example by calling them back "
        "on a number we already had)."
    )


RESET_UNCONFIRMED = "Two-factor authentication was not reset: tick the box to confirm you checked who asked."


@require_POST
def team_member_mfa_reset(request: HttpRequest, team_member_id: int) -> HttpResponse:
    """POST: delete the member's authenticators and end their sessions (``user_mfa_reset``), back to
    the member's page with a message; a refusal is shown there too."""
    mine = _mine(request)
    member = (
        ProviderMembership.objects.select_related("user")
        .filter(pk=team_member_id, provider=mine.provider)
        .first()
    )
    if member is None:
        raise Http404("no such member")
    if not MfaResetForm(request.POST).is_valid():
        messages.error(request, RESET_UNCONFIRMED)
        return redirect("console_team_member", team_member_id=member.pk)
    try:
        services.user_mfa_reset(
            actor=mine.user, target_user=member.user, provider=mine.provider, ip=services.client_ip(request)
        )
    except DomainError as exc:
        messages.error(request, exc.detail)
    else:
        messages.success(
            request,
            f"Two-factor authentication of {member.user.email} reset; they were signed out everywhere.",
        )
    return redirect("console_team_member", team_member_id=member.pk)


class TenantMemberForm(forms.Form):
    email = forms.EmailField(max_length=254)
    full_name = forms.CharField(max_length=200, required=False, label="Name (for a new user)")
    role = forms.ChoiceField(choices=TenantRole.choices, initial=TenantRole.END_USER)


def tenant_users(request: TenantRequest, tenant: str) -> HttpResponse:
    """A client's users and their tenant roles; the form adds a user or changes a role (same email)."""
    actor = request_actor(request)
    owner = request.tenant
    assert owner is not None
    form = TenantMemberForm(request.POST or None)
    status = 200
    if request.method == "POST" and form.is_valid():
        try:
            services.tenant_member_set(
                actor=actor, tenant=owner, ip=services.client_ip(request), **form.cleaned_data
            )
        except DomainError as exc:
            form_errors_apply(form, exc)
            status = exc.status
        else:
            messages.success(
                request, f"{form.cleaned_data['email']} is now {form.cleaned_data['role'].replace('_', ' ')}."
            )
            return redirect("tenant_users", tenant=owner.slug)
    elif request.method == "POST":
        status = 422
    members = list(
        TenantMembership.objects.filter(tenant=owner).select_related("user").order_by("role", "user__email")
    )
    ids = [m.user_id for m in members]
    mfa = mfa_types_by_user(user_ids=ids)
    elsewhere = set(
        User.objects.filter(signs_in_elsewhere_condition(tenant=owner), pk__in=ids).values_list(
            "pk", flat=True
        )
    )
    for m in members:
        m.mfa_status = mfa_methods_text(mfa.get(m.user_id, []))  # type: ignore[attr-defined]
        m.mfa_resettable = m.user_id in mfa and m.user_id not in elsewhere and m.user_id != actor.user_id  # type: ignore[attr-defined]
        m.mfa_elsewhere = m.user_id in mfa and m.user_id in elsewhere  # type: ignore[attr-defined]
    context = {"members": members, "form": form, "reset_form": MfaResetForm()}
    return render(request, "accounts/tenant_users.html", context, status=status)


@require_POST
def tenant_user_remove(request: TenantRequest, tenant: str, membership_id: int) -> HttpResponse:
    actor = request_actor(request)
    owner = request.tenant
    assert owner is not None
    membership = (
        TenantMembership.objects.filter(pk=membership_id, tenant=owner).select_related("user").first()
    )
    if membership is None:
        raise Http404("no such user here")
    try:
        services.tenant_member_remove(
            actor=actor, tenant=owner, membership=membership, ip=services.client_ip(request)
        )
    except DomainError as exc:
        messages.error(request, exc.detail)
    else:
        messages.success(request, f"{membership.user.email} no longer has a role here.")
    return redirect("tenant_users", tenant=owner.slug)


@require_POST
def tenant_user_mfa_reset(request: TenantRequest, tenant: str, membership_id: int) -> HttpResponse:
    """POST: reset the two-factor authentication of one of the client's users (``user_mfa_reset``,
    refused for someone who also signs in to another organisation), back to the users page."""
    owner = request.tenant
    assert owner is not None
    user = request.user
    assert isinstance(user, User)
    membership = (
        TenantMembership.objects.filter(pk=membership_id, tenant=owner).select_related("user").first()
    )
    if membership is None:
        raise Http404("no such user here")
    if not MfaResetForm(request.POST).is_valid():
        messages.error(request, RESET_UNCONFIRMED)
        return redirect("tenant_users", tenant=owner.slug)
    try:
        services.user_mfa_reset(
            actor=user, target_user=membership.user, tenant=owner, ip=services.client_ip(request)
        )
    except DomainError as exc:
        messages.error(request, exc.detail)
    else:
        messages.success(
            request,
            f"Two-factor authentication of {membership.user.email} reset; they were signed out everywhere.",
        )
    return redirect("tenant_users", tenant=owner.slug)
