"""Console shell pages on the console host: the provider home, the client switcher, the tenant entry
point, the profile (time zone) and personal API tokens."""

from __future__ import annotations

from django import forms
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone

from controlplane.accounts.models import ApiToken, User
from controlplane.accounts.selectors import mfa_status_text, security_event_list
from controlplane.accounts.services import api_token_create, api_token_revoke, user_time_zone_set
from controlplane.http import form_errors_apply
from controlplane.problems import DomainError
from controlplane.zones import zone_choices

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
