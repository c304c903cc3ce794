"""SAML endpoints (both hosts), home-realm discovery, and the console pages that manage connections.

SAML endpoints under ``/sso/saml/<connection>/``: a tenant's connection answers only on that tenant's
portal host, a provider's only on the console host; anywhere else, and when inactive, 404
(``selectors.connection_for_host``). Console pages: a tenant's connections under ``/t/<slug>/sso/``
(provider owners and admins, the tenant's client admins), the provider's own under ``/sso/``
(provider owners and admins). Others get 404, like a page that does not exist.
"""

from __future__ import annotations

import json
import secrets
import uuid
from dataclasses import dataclass
from typing import Any

import requests
from allauth.account.app_settings import EmailVerificationMethod
from allauth.account.internal.flows.login import record_authentication
from allauth.account.utils import perform_login
from allauth.socialaccount.adapter import get_adapter as get_social_adapter
from allauth.socialaccount.models import SocialApp
from allauth.socialaccount.providers.base import AuthProcess
from django import forms
from django.contrib import messages
from django.contrib.auth import logout
from django.contrib.auth.views import redirect_to_login
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from onelogin.saml2.settings import OneLogin_Saml2_Settings

from controlplane.accounts.models import User
from controlplane.accounts.services import client_ip, security_event_record
from controlplane.http import TenantRequest, form_errors_apply, request_actor
from controlplane.problems import DomainError, NotFound
from tenants.models import Tenant
from tenants.routing import hostname_of

from . import oidc_services, selectors, services
from .forms import ConnectionForm, OidcConnectionForm
from .logout import SESSION_SAML_KEY, post_logout_redirect_uri
from .models import OidcConnection, SamlConnection
from .saml import request_data, saml_settings, sp_base_url, sp_urls
from .throttle import sso_start_refusal


def safe_relay_state(request: HttpRequest, value: str | None) -> str:
    """RelayState and ``next`` are untrusted (open redirect, OWASP): only a relative path on this host
    (``/...``, not ``//...`` nor a backslash trick) is kept; anything else becomes ``/``."""
    value = (value or "").strip()
    if (
        value.startswith("/")
        and not value.startswith(("//", "/\\"))
        and url_has_allowed_host_and_scheme(value, allowed_hosts={request.get_host()}, require_https=False)
    ):
        return value
    return "/"


def _base(request: TenantRequest) -> str:
    return "portal_base.html" if request.portal_tenant is not None else "base.html"


def _connection_here(request: TenantRequest, connection_id: uuid.UUID) -> SamlConnection:
    connection = selectors.connection_for_host(connection_id=connection_id, hostname=hostname_of(request))
    if connection is None:
        raise Http404("no such connection")
    return connection


def _conn_id(kwargs: dict[str, Any]) -> uuid.UUID:
    value = kwargs.get("connection_id") or kwargs.get("provider_connection_id")
    assert isinstance(value, uuid.UUID)
    return value


# --- SAML endpoints -----------------------------------------------------------------------------------


@require_GET
def saml_metadata(request: TenantRequest, **kwargs: Any) -> HttpResponse:
    """This connection's SP metadata (entity id, ACS, SLO, signing certificate), for the IdP."""
    connection = _connection_here(request, _conn_id(kwargs))
    sp_settings = OneLogin_Saml2_Settings(saml_settings(connection), sp_validation_only=True)
    metadata = sp_settings.get_sp_metadata()
    return HttpResponse(metadata, content_type="application/samlmetadata+xml")


@require_GET
def saml_login(request: TenantRequest, **kwargs: Any) -> HttpResponse:
    """Start sign-in: a signed AuthnRequest to the IdP (HTTP-Redirect); ``?next=`` becomes RelayState."""
    connection = _connection_here(request, _conn_id(kwargs))
    if (too_many := sso_start_refusal(request)) is not None:
        return too_many
    relay = safe_relay_state(request, request.GET.get("next"))
    return redirect(
        services.saml_login_start(
            connection=connection, request_data=request_data(request), relay_state=relay
        )
    )


@csrf_exempt  # the IdP's auto-posting form comes from another site; the signed assertion is the proof
@require_POST
def saml_acs(request: TenantRequest, **kwargs: Any) -> HttpResponse:
    """The assertion consumer service (HTTP-POST binding): verify, then sign in through allauth's login
    flow, so its stages run as for a password: a user with an authenticator app or security key is
    asked for it before the session is signed in (the IdP's own MFA is not relied on, decision 0016).
    allauth's login rotates the session id and CSRF token and the account adapter binds the session to
    this host; then on to the RelayState path."""
    connection = _connection_here(request, _conn_id(kwargs))
    try:
        result = services.saml_response_accept(
            connection=connection, request_data=request_data(request), ip=client_ip(request)
        )
    except services.SamlRefused:
        return render(request, "sso/refused.html", {"base_template": _base(request)}, status=403)
    if request.user.is_authenticated and request.user.pk != result.user.pk:
        logout(request)  # another person's session on this browser: start clean
    request.session[SESSION_SAML_KEY] = {
        "connection": str(connection.pk),
        "name_id": result.name_id,
        "name_id_format": result.name_id_format,
        "session_index": result.session_index,
    }
    # allauth's record of how this session authenticated (read by the login audit and by MFA); the
    # OIDC path records "socialaccount" the same way inside allauth.
    record_authentication(request, result.user, method="saml", connection=str(connection.pk))
    return perform_login(
        request,
        result.user,
        email_verification=EmailVerificationMethod.NONE,  # the IdP vouches for the address
        redirect_url=safe_relay_state(request, request.POST.get("RelayState")),
    )


@require_GET
def saml_sls(request: TenantRequest, **kwargs: Any) -> HttpResponse:
    """Single logout service (HTTP-Redirect): the IdP's LogoutResponse to our LogoutRequest, or an
    IdP-initiated LogoutRequest (we end this session when it is that subject's, then answer the IdP).
    Without either, back to the sign-in page. Refusals answer 403 and are audited."""
    connection = _connection_here(request, _conn_id(kwargs))
    data = request_data(request)
    ip = client_ip(request)
    try:
        if "SAMLResponse" in request.GET:
            services.saml_logout_response_accept(connection=connection, request_data=data, ip=ip)
        elif "SAMLRequest" in request.GET:

            def end_session() -> None:
                user_id = request.user.pk
                logout(request)
                security_event_record(
                    verb="sso.saml.logout",
                    user_id=user_id,
                    tenant_id=connection.tenant_id,
                    ip=ip,
                    details={"connection": str(connection.pk), "initiated_by": "idp"},
                )

            return redirect(
                services.saml_logout_request_accept(
                    connection=connection,
                    request_data=data,
                    session_subject=request.session.get(SESSION_SAML_KEY) or {},
                    end_session=end_session,
                    ip=ip,
                )
            )
    except services.SamlRefused:
        return render(request, "sso/refused.html", {"base_template": _base(request)}, status=403)
    return redirect("account_login")


class StartForm(forms.Form):
    email = forms.EmailField(
        label="Work email", max_length=254, widget=forms.EmailInput(attrs={"autocomplete": "email"})
    )


@require_http_methods(["GET", "POST"])
def sso_start(request: TenantRequest) -> HttpResponse:
    """Home-realm discovery: ask for the email, send the browser to the IdP of the connection that owns
    its domain here (``sso_connection_for_email``), or back to the password sign-in when none does."""
    form = StartForm(request.POST or None)
    next_path = safe_relay_state(request, request.POST.get("next") or request.GET.get("next"))
    if request.method == "POST" and (too_many := sso_start_refusal(request)) is not None:
        return too_many
    if request.method == "POST" and form.is_valid():
        connection = selectors.sso_connection_for_email(
            email=form.cleaned_data["email"], hostname=hostname_of(request)
        )
        if connection is None:
            messages.info(
                request, "Your organisation does not use single sign-on here: sign in with your password."
            )
            return redirect_to_login(next_path)
        if isinstance(connection, OidcConnection):
            return oidc_login_redirect(request, connection, next_path)
        return redirect(
            services.saml_login_start(
                connection=connection, request_data=request_data(request), relay_state=next_path
            )
        )
    context = {"form": form, "next": next_path, "base_template": _base(request)}
    return render(request, "sso/start.html", context, status=422 if request.method == "POST" else 200)


# --- console pages ------------------------------------------------------------------------------------


def _rows(connections: Any) -> list[dict[str, Any]]:
    return [{"connection": c, "urls": sp_urls(c)} for c in connections]


def _tenant_actor(request: TenantRequest) -> tuple[Tenant, Any]:
    actor = request_actor(request)
    tenant = request.tenant
    if tenant is None or actor.role not in selectors.TENANT_MANAGE_ROLES:
        raise Http404("no such page")
    return tenant, actor


def _provider_member(request: TenantRequest) -> Any:
    if not request.user.is_authenticated:
        return None
    assert isinstance(request.user, User)
    membership = selectors.provider_manager_membership(user=request.user)
    if membership is None:
        raise Http404("no such page")
    return membership


def _form_page(
    request: TenantRequest,
    *,
    connection: SamlConnection | None,
    tenant: Tenant | None,
    provider: Any,
    actor_role: str,
    list_url: str,
) -> HttpResponse:
    editing = connection is not None
    initial: dict[str, Any] = {}
    if connection is not None:
        initial = {
            "name": connection.name,
            "email_domains": ", ".join(connection.email_domains),
            "role_rules": json.dumps(connection.role_rules) if connection.role_rules else "",
            "default_role": connection.default_role,
            "is_active": connection.is_active,
        }
    form = ConnectionForm(
        request.POST or None,
        request.FILES or None,
        initial=initial,
        tenant_owned=tenant is not None,
        editing=editing,
    )
    status = 422 if request.method == "POST" else 200
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            domains = services.email_domains_parse(text=data["email_domains"])
            rules = services.role_rules_parse(text=data.get("role_rules") or "")
            common = {
                "actor_user_id": request.user.pk,
                "actor_role": actor_role,
                "name": data["name"],
                "metadata_xml": form.metadata_text(),
                "email_domains": domains,
                "role_rules": rules,
                "default_role": data.get("default_role") or "end_user",
                "ip": client_ip(request),
            }
            if connection is None:
                connection = services.connection_create(tenant=tenant, provider=provider, **common)
                messages.success(
                    request, "Connection created: give the IdP this connection's SP metadata URL."
                )
            else:
                services.connection_update(connection=connection, is_active=data["is_active"], **common)
                messages.success(request, "Connection saved.")
        except DomainError as exc:
            form_errors_apply(form, exc)
            status = exc.status
        else:
            return redirect(list_url)
    context = {
        "form": form,
        "connection": connection,
        "urls": sp_urls(connection) if connection is not None else None,
        "events": selectors.connection_event_list(connection=connection) if connection is not None else [],
        "list_url": list_url,
        "owner_name": tenant.name if tenant is not None else provider.name,
    }
    context["protocol"] = "SAML"
    return render(request, "sso/connection_form.html", context, status=status)


@dataclass(frozen=True)
class _Owner:
    """Whose connections a page manages: the tenant in the path (``/t/<slug>/sso/``), else the signed-in
    member's provider (``/sso/``); the role they act with; the list page to return to."""

    tenant: Tenant | None
    provider: Any
    actor_role: str
    list_url: str

    @property
    def name(self) -> str:
        return str(self.tenant.name if self.tenant is not None else self.provider.name)

    @property
    def scope(self) -> dict[str, Any]:
        return {"tenant": self.tenant} if self.tenant is not None else {"provider_id": self.provider.pk}


def _owner(request: TenantRequest) -> _Owner | None:
    """None: not signed in (the caller sends to sign in). Http404 for a role that manages nothing here."""
    if request.tenant is not None:
        tenant, actor = _tenant_actor(request)
        return _Owner(tenant, None, actor.role, f"/t/{tenant.slug}/sso/")
    membership = _provider_member(request)
    if membership is None:
        return None
    return _Owner(None, membership.provider, membership.role, "/sso/")


# The path parameter naming the connection differs per URL conf (tests fill each by name).
_ID_PARAMS = ("connection_id", "provider_connection_id", "oidc_connection_id", "provider_oidc_connection_id")


def _connection_of(owner: _Owner, protocol: str, kwargs: dict[str, Any]) -> Any:
    getter = _PROTOCOLS[protocol][0]
    connection_id = next(kwargs[name] for name in _ID_PARAMS if name in kwargs)
    try:
        return getter(connection_id=connection_id, **owner.scope)
    except NotFound as exc:
        raise Http404(str(exc)) from exc


def connections(request: TenantRequest, **kwargs: Any) -> HttpResponse:
    """The owner's SAML connections with their SP URLs and OIDC connections with their redirect URIs."""
    owner = _owner(request)
    if owner is None:
        return redirect_to_login(request.get_full_path())
    context = {
        "rows": _rows(selectors.connection_list(**owner.scope)),
        "oidc_rows": _oidc_rows(selectors.oidc_connection_list(**owner.scope)),
        "owner_name": owner.name,
        "new_url": f"{owner.list_url}new/",
        "edit_prefix": owner.list_url,
    }
    return render(request, "sso/connection_list.html", context)


def connection_new(request: TenantRequest, *, protocol: str, **kwargs: Any) -> HttpResponse:
    """A new connection (``protocol`` "saml" or "oidc", from the URL conf) of the owner."""
    owner = _owner(request)
    if owner is None:
        return redirect_to_login(request.get_full_path())
    page = _PROTOCOLS[protocol][1]
    return page(
        request,
        connection=None,
        tenant=owner.tenant,
        provider=owner.provider,
        actor_role=owner.actor_role,
        list_url=owner.list_url,
    )


def connection_edit(request: TenantRequest, *, protocol: str, **kwargs: Any) -> HttpResponse:
    """One connection of the owner: its URLs, settings and recent events."""
    owner = _owner(request)
    if owner is None:
        return redirect_to_login(request.get_full_path())
    page = _PROTOCOLS[protocol][1]
    return page(
        request,
        connection=_connection_of(owner, protocol, kwargs),
        tenant=owner.tenant,
        provider=owner.provider,
        actor_role=owner.actor_role,
        list_url=owner.list_url,
    )


@require_POST
def connection_deactivate(request: TenantRequest, *, protocol: str, **kwargs: Any) -> HttpResponse:
    """Stop signing anyone in through one of the owner's connections (audited by the service)."""
    owner = _owner(request)
    if owner is None:
        return redirect_to_login(request.get_full_path())
    connection = _connection_of(owner, protocol, kwargs)
    try:
        services.connection_deactivate(
            actor_user_id=request.user.pk,
            actor_role=owner.actor_role,
            connection=connection,
            ip=client_ip(request),
        )
    except DomainError as exc:
        raise Http404(exc.detail) from exc
    messages.success(request, f"{connection.name} is deactivated: nobody signs in through it now.")
    return redirect(owner.list_url)


# --- OpenID Connect ------------------------------------------------------------------------------------


def oidc_redirect_uri(connection: OidcConnection) -> str:
    """The redirect URI to register at the OP: allauth's callback of this connection's SocialApp on the
    host that owns it (the tenant's primary portal host, or the console)."""
    path = reverse("openid_connect_callback", kwargs={"provider_id": connection.app_provider_id})
    return f"{sp_base_url(connection)}{path}"


def _oidc_rows(connections: Any) -> list[dict[str, Any]]:
    return [{"connection": c, "redirect_uri": oidc_redirect_uri(c)} for c in connections]


def oidc_login_redirect(request: TenantRequest, connection: OidcConnection, next_path: str) -> HttpResponse:
    """Start the authorization code flow of ``connection`` through allauth: state and PKCE verifier are
    stashed in the session by allauth, with a fresh ``nonce`` (OIDC Core §3.1.2.1, §15.5.2) that the
    adapter compares with the ID token's. 404 when the connection is not served on this host."""
    try:
        provider = get_social_adapter().get_provider(request, connection.app_provider_id)
    except SocialApp.DoesNotExist as exc:
        raise Http404("no such connection") from exc
    nonce = secrets.token_urlsafe(32)
    try:
        response: HttpResponse = provider.redirect(
            request,
            AuthProcess.LOGIN,
            next_url=next_path,
            auth_params={"nonce": nonce},
            scope=list(oidc_services.OIDC_SCOPES),
            oidc_nonce=nonce,
        )
    except requests.RequestException:  # the OP's discovery document cannot be read now
        context = {"base_template": _base(request), "unavailable": connection.name}
        return render(request, "sso/refused.html", context, status=502)
    return response


@require_http_methods(["GET", "POST"])
def oidc_login(request: TenantRequest, **kwargs: Any) -> HttpResponse:
    """Sign in through an OIDC connection: GET asks to confirm (a sign-in never starts on a GET, like
    allauth's SOCIALACCOUNT_LOGIN_ON_GET = False), POST goes to the provider. ``next`` must be a path
    here. 404 when the connection is inactive or not served on this host."""
    connection = selectors.oidc_connection_for_host(
        provider_id=str(kwargs.get("oidc_connection_id") or kwargs.get("provider_oidc_connection_id")),
        hostname=hostname_of(request),
    )
    if connection is None:
        raise Http404("no such connection")
    next_path = safe_relay_state(request, request.POST.get("next") or request.GET.get("next"))
    if request.method == "POST":
        return sso_start_refusal(request) or oidc_login_redirect(request, connection, next_path)
    context = {"connection": connection, "next": next_path, "base_template": _base(request)}
    return render(request, "sso/oidc_login.html", context)


def _oidc_form_page(
    request: TenantRequest,
    *,
    connection: OidcConnection | None,
    tenant: Tenant | None,
    provider: Any,
    actor_role: str,
    list_url: str,
) -> HttpResponse:
    initial: dict[str, Any] = {}
    if connection is not None:
        initial = {
            "name": connection.name,
            "kind": connection.kind,
            "issuer": connection.issuer if connection.kind == "generic" else "",
            "entra_tenant": oidc_services.entra_tenant_of(connection),
            "client_id": connection.client_id,
            "email_domains": ", ".join(connection.email_domains),
            "role_rules": json.dumps(connection.role_rules) if connection.role_rules else "",
            "default_role": connection.default_role,
            "is_active": connection.is_active,
        }
    form = OidcConnectionForm(
        request.POST or None, initial=initial, tenant_owned=tenant is not None, editing=connection is not None
    )
    status = 422 if request.method == "POST" else 200
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            common = {
                "actor_user_id": request.user.pk,
                "actor_role": actor_role,
                "name": data["name"],
                "kind": data["kind"],
                "issuer": data.get("issuer") or "",
                "entra_tenant": data.get("entra_tenant") or "",
                "client_id": data["client_id"],
                "client_secret": data.get("client_secret") or "",
                "email_domains": services.email_domains_parse(text=data["email_domains"]),
                "role_rules": services.role_rules_parse(text=data.get("role_rules") or ""),
                "default_role": data.get("default_role") or "end_user",
                "ip": client_ip(request),
            }
            if connection is None:
                connection = oidc_services.oidc_connection_create(tenant=tenant, provider=provider, **common)
                messages.success(request, "Connection created: register its redirect URI at the provider.")
            else:
                oidc_services.oidc_connection_update(
                    connection=connection, is_active=data["is_active"], **common
                )
                messages.success(request, "Connection saved.")
        except DomainError as exc:
            form_errors_apply(form, exc)
            status = exc.status
        else:
            return redirect(list_url)
    context = {
        "form": form,
        "connection": connection,
        "protocol": "OpenID Connect",
        "redirect_uri": oidc_redirect_uri(connection) if connection is not None else None,
        "post_logout_redirect_uri": post_logout_redirect_uri(connection) if connection is not None else None,
        "events": selectors.connection_event_list(connection=connection) if connection is not None else [],
        "list_url": list_url,
        "owner_name": tenant.name if tenant is not None else provider.name,
    }
    return render(request, "sso/connection_form.html", context, status=status)


# Per protocol (the URL confs pass ``protocol``): the owner-scoped getter and the form page. Everything
# else about a connection's pages (the list, deactivation) is the same for both.
_PROTOCOLS: dict[str, tuple[Any, Any]] = {
    "saml": (selectors.connection_get, _form_page),
    "oidc": (selectors.oidc_connection_get, _oidc_form_page),
}
