"""Routing: which tenant a request is for, whether the user may enter it, and the schema it runs in.

Three entrances (../shared/ARCHITECTURE.md):

1. Console and API on a console host (``CONSOLE_HOSTS``): the tenant is in the path,
   ``/t/<slug>/...`` or ``/api/v1/t/<slug>/...``. The user's access is checked, then the request runs
   inside ``tenant_context``. Nothing global (no "current tenant" in the session) decides where a
   write goes, so two tabs on two tenants never write into each other.
2. Branded portal on a tenant's own host (a Domain row): the tenant is the host; the portal URLconf.
3. The agent gateway (later issue): the tenant is the agent's credential.

An unknown host, an unknown tenant and a tenant the user may not enter all answer 404, the same way.
This middleware and ``tenant_context`` are the only places that switch schemas.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from typing import cast

from django.conf import settings
from django.contrib.auth.models import AnonymousUser
from django.contrib.auth.views import redirect_to_login
from django.http import Http404, HttpRequest, HttpResponse
from django.utils import timezone
from django_tenants.utils import tenant_context

from controlplane.accounts.models import ApiToken, User
from controlplane.accounts.selectors import mfa_enrolment_missing, portal_role_get, tenant_role_get
from controlplane.accounts.services import api_token_used, client_ip
from controlplane.http import TenantRequest
from controlplane.problems import problem_response
from modules.people.services import person_for_user
from modules.records.actor import Actor

from .models import Domain, Tenant
from .template import expected_migration_state

SESSION_HOST_KEY = "_bound_host"
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")
TENANT_PATH = re.compile(r"^(?P<api>/api/v1)?/t/(?P<slug>[a-z0-9-]{1,40})(?:/|$)")


def hostname_of(request: HttpRequest) -> str:
    """The request's host without port, lower-case. Reads the Host header only (no X-Forwarded-Host)."""
    host = request.META.get("HTTP_HOST") or request.META.get("SERVER_NAME", "")
    return host.rsplit(":", 1)[0].lower() if not host.startswith("[") else host.lower()


def session_host_check(request: HttpRequest, hostname: str) -> None:
    """A session belongs to the host it signed in on. Cookies are host-only, so a browser never sends it
    elsewhere; a cookie copied to another tenant's host is treated as signed out there. Sessions made
    without allauth's login (tests' force_login) are bound on first use."""
    if not request.user.is_authenticated:
        return
    bound = request.session.get(SESSION_HOST_KEY)
    if bound is None:
        request.session[SESSION_HOST_KEY] = hostname
    elif bound != hostname:
        request.user = AnonymousUser()


def request_token(request: HttpRequest) -> ApiToken | None:
    """The valid (not revoked, not expired) token of an ``Authorization: Bearer <token>`` header whose
    user is active, or None; its use is recorded (``api_token_used``). Never reads the session."""
    header = request.META.get("HTTP_AUTHORIZATION", "")
    if not header.startswith("Bearer "):
        return None
    digest = hashlib.sha256(header[7:].strip().encode()).hexdigest()
    token = ApiToken.objects.select_related("user").filter(token_hash=digest, revoked_at__isnull=True).first()
    if token is None or not token.user.is_active:
        return None
    if token.expires_at is not None and token.expires_at <= timezone.now():
        return None
    api_token_used(token=token, ip=client_ip(request))
    return token


def invalid_token(request: HttpRequest) -> HttpResponse:
    return problem_response(request, status=401, slug="unauthenticated", title="Invalid API token")


def token_refusal(request: HttpRequest, token: ApiToken) -> HttpResponse | None:
    """A valid token whose user must use two-factor authentication but has set none up is refused
    (403 ``mfa-required``): a token never skips a required second factor (issue 6). One query."""
    if mfa_enrolment_missing(user=token.user):
        return problem_response(
            request,
            status=403,
            slug="mfa-required",
            title="Set up two-factor authentication before using API tokens",
        )
    return None


def actor_for(request: TenantRequest, user: User, role: str, source: str) -> Actor:
    """Build the request's actor inside the tenant schema (mirrors the user into the directory)."""
    person = person_for_user(user_id=user.pk, display_name=user.full_name or user.email, email=user.email)
    return Actor(user_id=user.pk, person=person, role=role, source=source)


class TenantRoutingMiddleware:
    """Resolve the tenant (path on console hosts, host on portals), check access, enter its schema."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, http_request: HttpRequest) -> HttpResponse:
        request = cast(TenantRequest, http_request)
        request.tenant = None
        request.portal_tenant = None
        request.actor = None  # type: ignore[assignment]  # set by enter() once access is checked
        request.auth_via = None
        request.api_token = None
        hostname = hostname_of(request)
        session_host_check(request, hostname)
        if hostname in settings.CONSOLE_HOSTS:
            return self.console(request)
        # Only a verified domain routes: a custom domain is pending until its DNS TXT proof was found
        # (tenants.services.domain_verify), so a dangling CNAME cannot bind a stranger's host to a tenant.
        domain = (
            Domain.objects.select_related("tenant").filter(domain=hostname, verified_at__isnull=False).first()
        )
        if domain is None or domain.tenant.status != Tenant.Status.ACTIVE:
            raise Http404("unknown host")
        return self.portal(request, domain.tenant)

    def console(self, request: TenantRequest) -> HttpResponse:
        match = TENANT_PATH.match(request.path_info)
        if match is None:
            if request.path_info.startswith("/api/v1/") and "HTTP_AUTHORIZATION" in request.META:
                token = request_token(request)  # the queue across clients (tokens of all tenants)
                if token is None:
                    return invalid_token(request)
                if (refused := token_refusal(request, token)) is not None:
                    return refused
                request.user, request.auth_via, request.api_token = token.user, "token", token
            return self.get_response(request)  # public schema: home, sign-in, tokens, docs
        is_api = bool(match.group("api"))
        user: User | AnonymousUser
        token = None
        if is_api and "HTTP_AUTHORIZATION" in request.META:
            token = request_token(request)  # a token request never falls back to the session
            if token is None:
                return invalid_token(request)
            if (refused := token_refusal(request, token)) is not None:
                return refused
            request.user = user = token.user
            request.auth_via = "token"
            request.api_token = token
        else:
            user = request.user
            request.auth_via = "session"
        if not user.is_authenticated:
            if is_api:
                return problem_response(request, status=401, slug="unauthenticated", title="Sign in required")
            return redirect_to_login(request.get_full_path())
        assert isinstance(user, User)
        tenant = Tenant.objects.filter(slug=match.group("slug"), status=Tenant.Status.ACTIVE).first()
        role = tenant_role_get(user=user, tenant=tenant) if tenant is not None else None
        if tenant is None or role is None or (token is not None and not token.reaches(tenant.pk)):
            return self.not_found(request, is_api)  # outside a token's scope: as a tenant that is not there
        if token is not None and token.access == ApiToken.Access.READ and request.method not in SAFE_METHODS:
            return problem_response(
                request, status=403, slug="token-read-only", title="This API token may only read"
            )
        return self.enter(request, tenant, user, role, source="api" if is_api else "console")

    def portal(self, request: TenantRequest, tenant: Tenant) -> HttpResponse:
        request.urlconf = settings.PORTAL_URLCONF
        request.portal_tenant = tenant
        user = request.user
        role = None
        if user.is_authenticated:
            assert isinstance(user, User)
            role = portal_role_get(user=user, tenant=tenant)
        if role is None:
            # Signed out, or signed in without a role here: only the sign-in pages are served.
            request.tenant = tenant
            with tenant_context(tenant):
                return self.get_response(request)
        assert isinstance(user, User)
        return self.enter(request, tenant, user, role, source="portal")

    def enter(
        self, request: TenantRequest, tenant: Tenant, user: User, role: str, *, source: str
    ) -> HttpResponse:
        if tenant.migration_state != expected_migration_state():
            # A schema behind the code could silently read `public` tables (django-tenants #846).
            return problem_response(
                request,
                status=503,
                slug="tenant-migrating",
                title="This client is being upgraded; retry soon",
            )
        request.tenant = tenant
        with tenant_context(tenant):
            request.actor = actor_for(request, user, role, source)
            return self.get_response(request)

    @staticmethod
    def not_found(request: HttpRequest, is_api: bool) -> HttpResponse:
        if is_api:
            return problem_response(request, status=404, slug="not-found", title="Not found")
        raise Http404("no such tenant")
