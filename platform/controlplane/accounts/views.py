"""The provider's team (``/team/``, control plane) and a client's users (``/t/<slug>/users/``).

Who may open them is the route's permission (controlplane.routes: ``provider_team.manage``,
``tenant_members.manage``); the services check it again and audit every change (SecurityEvent).
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from controlplane.http import TenantRequest, form_errors_apply, request_actor
from controlplane.problems import DomainError
from tenants.models import Tenant

from . import services
from .models import ProviderMembership, ProviderRole, TenantMembership, TenantRole, User


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
    members = (
        ProviderMembership.objects.filter(provider=mine.provider)
        .select_related("user")
        .order_by("user__email")
        .prefetch_related("grants__tenant")
    )
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
    return render(request, "accounts/team_member.html", {"member": member, "form": form}, status=status)


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
    members = (
        TenantMembership.objects.filter(tenant=owner).select_related("user").order_by("role", "user__email")
    )
    return render(request, "accounts/tenant_users.html", {"members": members, "form": form}, status=status)


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
