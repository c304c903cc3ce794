"""Console shell pages on the console host: the provider home and the tenant entry point."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render

from controlplane.accounts.models import ApiToken, User
from controlplane.accounts.selectors import tenant_list_for_user
from controlplane.accounts.services import api_token_create, api_token_revoke
from controlplane.problems import DomainError


@login_required
def home(request: HttpRequest) -> HttpResponse:
    """The provider home: the client tenants this user may enter."""
    assert isinstance(request.user, User)
    tenants = tenant_list_for_user(user=request.user).prefetch_related("domains")
    return render(request, "console/home.html", {"tenants": tenants})


def tenant_home(request: HttpRequest, tenant: str) -> HttpResponse:
    """Entering a tenant lands on its incident queue (the routing middleware checked access)."""
    return redirect("incident_list", tenant=tenant)


@login_required
def tokens(request: HttpRequest) -> HttpResponse:
    """Personal API tokens: list, create (secret shown once), revoke."""
    assert isinstance(request.user, User)
    created = error = None
    if request.method == "POST":
        try:
            if "revoke" in request.POST:
                api_token_revoke(user=request.user, token_id=int(request.POST["revoke"]))
            else:
                _, created = api_token_create(user=request.user, name=request.POST.get("name", ""))
        except (DomainError, ValueError) as exc:
            error = str(exc)
    rows = ApiToken.objects.filter(user=request.user, revoked_at__isnull=True).order_by("-created_at")
    return render(request, "console/tokens.html", {"tokens": rows, "created": created, "error": error})
