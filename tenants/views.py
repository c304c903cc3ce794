"""Branding and custom-domain pages. Entry points: parse a form, call one service or selector.

Console (``/t/<slug>/branding/``, ``/t/<slug>/domains/``): the routing middleware checked access and built
the actor. Portal (``/branding/`` on the tenant's host): the client admin's branding page. The logo is
served by ``logo`` on both (never from MEDIA_URL). ``tls_ask`` on the console host answers the reverse
proxy's on-demand TLS question "may I get a certificate for this host?".
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.conf import settings
from django.contrib import messages
from django.core.files.storage import default_storage
from django.http import FileResponse, Http404, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST

from controlplane.http import TenantRequest, form_errors_apply, portal_page, request_actor
from controlplane.permissions import P
from controlplane.problems import DomainError, NotFound

from . import selectors, services
from .models import Tenant
from .validation import LOGO_MAX_BYTES, hostname_normalise

COLOUR_HELP = "#rrggbb; white text must reach WCAG AA contrast (4.5:1) on it."


class BrandingForm(forms.Form):
    portal_title = forms.CharField(max_length=80, required=False, label="Portal title")
    welcome_text = forms.CharField(
        max_length=2000, required=False, label="Welcome text", widget=forms.Textarea(attrs={"rows": 4})
    )
    primary_color = forms.CharField(
        max_length=7,
        label="Primary colour (header)",
        help_text=COLOUR_HELP,
        widget=forms.TextInput(attrs={"pattern": "#[0-9a-fA-F]{6}", "size": 8}),
    )
    accent_color = forms.CharField(
        max_length=7,
        label="Accent colour (buttons and links)",
        help_text=COLOUR_HELP,
        widget=forms.TextInput(attrs={"pattern": "#[0-9a-fA-F]{6}", "size": 8}),
    )
    logo = forms.FileField(
        required=False,
        label="Logo",
        help_text=f"PNG, JPEG, GIF or WebP, at most {LOGO_MAX_BYTES // 1024} KiB.",
        widget=forms.ClearableFileInput(attrs={"accept": "image/png,image/jpeg,image/gif,image/webp"}),
    )
    logo_remove = forms.BooleanField(required=False, label="Remove the current logo")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for name, field in self.fields.items():
            if field.help_text:  # the template renders it with this id, next to the field
                field.widget.attrs["aria-describedby"] = f"id_{name}_help"


def _tenant(request: TenantRequest) -> Tenant:
    tenant = request.tenant
    if tenant is None:
        raise Http404("no tenant")
    return tenant


def _branding_page(request: TenantRequest, template: str) -> HttpResponse:
    actor = request_actor(request)
    tenant = _tenant(request)
    if not actor.may(P.BRANDING_MANAGE):
        raise Http404("no such page")  # end users do not learn the page exists
    branding = selectors.branding_get(tenant=tenant)
    initial = {
        "portal_title": branding.portal_title,
        "welcome_text": branding.welcome_text,
        "primary_color": branding.primary_color,
        "accent_color": branding.accent_color,
    }
    form = BrandingForm(request.POST or None, request.FILES or None, initial=initial)
    status = 422 if request.method == "POST" else 200
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        upload = data.get("logo")
        logo: bytes | None = None
        if upload:
            logo = upload.read(LOGO_MAX_BYTES + 1)  # the service refuses anything longer
        try:
            services.branding_update(
                actor=actor,
                tenant=tenant,
                portal_title=data["portal_title"],
                welcome_text=data["welcome_text"],
                primary_color=data["primary_color"],
                accent_color=data["accent_color"],
                logo=logo,
                logo_remove=data["logo_remove"],
            )
        except DomainError as exc:
            form_errors_apply(form, exc)
            status = exc.status
        else:
            messages.success(request, "Branding saved.")
            return redirect(request.path)
    context = {
        "form": form,
        "branding": branding,
        "audit": selectors.tenant_audit_list(actor=actor, tenant=tenant, prefix="branding."),
    }
    return render(request, template, context, status=status)


def console_branding(request: TenantRequest, tenant: str) -> HttpResponse:
    """The tenant's branding, set by the provider's staff (GET shows, POST saves)."""
    return _branding_page(request, "tenants/branding.html")


@portal_page
def portal_branding(request: TenantRequest) -> HttpResponse:
    """The tenant's branding, set by its client admin on the portal (404 for other roles)."""
    return _branding_page(request, "tenants/portal_branding.html")


@require_GET
def logo(request: TenantRequest, tenant: str | None = None) -> FileResponse:
    """The tenant's logo bytes, with the type sniffed at upload and ``nosniff``. Public on the tenant's
    own host (it shows on the sign-in page); on the console, behind the routing middleware's access
    check. 404 when there is none."""
    owner = request.portal_tenant or request.tenant
    if owner is None:
        raise Http404("no tenant")
    branding = selectors.branding_get(tenant=owner)
    if not branding.logo_name:
        raise Http404("no logo")
    try:
        handle = default_storage.open(branding.logo_name, "rb")
    except FileNotFoundError as exc:
        raise Http404("no logo") from exc
    response = FileResponse(handle, content_type=branding.logo_type)
    response["X-Content-Type-Options"] = "nosniff"
    response["Cache-Control"] = "private, max-age=300"
    response["Content-Security-Policy"] = "default-src 'none'; sandbox"
    return response


class DomainForm(forms.Form):
    hostname = forms.CharField(
        max_length=253, label="Hostname", help_text="For example help.client.example (no https://, no port)."
    )


def console_domains(request: TenantRequest, tenant: str) -> HttpResponse:
    """The tenant's portal hostnames, with the TXT proof of pending ones; POST adds a hostname."""
    actor = request_actor(request)
    owner = _tenant(request)
    form = DomainForm(request.POST or None)
    status = 422 if request.method == "POST" else 200
    if request.method == "POST" and form.is_valid():
        try:
            services.domain_add(actor=actor, tenant=owner, hostname=form.cleaned_data["hostname"])
        except DomainError as exc:
            form_errors_apply(form, exc)
            status = exc.status
        else:
            messages.success(request, "Domain added: publish the TXT record below, then verify.")
            return redirect("tenant_domains", tenant=owner.slug)
    rows: list[dict[str, Any]] = [
        {
            "domain": d,
            "challenge_name": services.domain_challenge_name(d),
            "challenge_value": services.domain_challenge_value(d),
        }
        for d in selectors.domain_list(actor=actor, tenant=owner)
    ]
    context = {
        "form": form,
        "rows": rows,
        "can_manage": actor.may(P.DOMAIN_MANAGE),
        "may_read": actor.may(P.DOMAIN_READ),
        "cname_target": f"{owner.slug}.{settings.PORTAL_BASE_DOMAIN}",
        "audit": selectors.tenant_audit_list(actor=actor, tenant=owner, prefix="domain."),
    }
    if not context["may_read"]:
        raise Http404("no such page")
    return render(request, "tenants/domains.html", context, status=status)


@require_POST
def console_domain_verify(request: TenantRequest, tenant: str, domain_id: int) -> HttpResponse:
    """Look the TXT proof up now; the result is shown as a message on the domains page."""
    actor = request_actor(request)
    try:
        domain = selectors.domain_get(actor=actor, tenant=_tenant(request), domain_id=domain_id)
        services.domain_verify(actor=actor, domain=domain)
    except NotFound as exc:
        raise Http404(str(exc)) from exc
    except DomainError as exc:
        messages.error(request, f"Not verified: {exc.detail}")
    else:
        messages.success(request, f"{domain.domain} is verified; the portal now answers there.")
    return redirect("tenant_domains", tenant=tenant)


@require_POST
def console_domain_remove(request: TenantRequest, tenant: str, domain_id: int) -> HttpResponse:
    actor = request_actor(request)
    try:
        domain = selectors.domain_get(actor=actor, tenant=_tenant(request), domain_id=domain_id)
        services.domain_remove(actor=actor, domain=domain)
    except NotFound as exc:
        raise Http404(str(exc)) from exc
    except DomainError as exc:
        messages.error(request, exc.detail)
    else:
        messages.success(request, f"{domain.domain} removed.")
    return redirect("tenant_domains", tenant=tenant)


@require_GET
def tls_ask(request: TenantRequest) -> HttpResponse:
    """The reverse proxy's on-demand TLS check (Caddy's ``on_demand_tls { ask ... }``): ``?domain=<host>``
    answers 200 only for a verified domain of an active tenant, else 404, so certificates are issued
    for proven hostnames only (never for whatever SNI a stranger sends)."""
    try:
        host = hostname_normalise(request.GET.get("domain", ""))
    except ValueError:
        return HttpResponse("no\n", status=404, content_type="text/plain")
    if selectors.domain_is_routable(hostname=host):
        return HttpResponse("ok\n", content_type="text/plain")
    return HttpResponse("no\n", status=404, content_type="text/plain")
