"""django-allauth adapter: no public signup; on a tenant's portal host only that tenant's users sign in;
sign-ins, refusals and lockouts are recorded in the security audit (accounts.SecurityEvent)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from allauth.account.adapter import DefaultAccountAdapter
from allauth.account.internal.flows.login import get_authentication_records
from allauth.core import context as allauth_context
from allauth.mfa.adapter import DefaultMFAAdapter
from allauth.mfa.models import Authenticator
from django.contrib.auth.base_user import AbstractBaseUser
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpRequest

from .crypto import TOTP_SECRET, secret_seal, secret_unseal
from .models import User
from .selectors import SECOND_FACTORS, mfa_required, portal_role_get
from .services import client_ip, security_event_record

if TYPE_CHECKING:
    from tenants.models import Tenant


def where(request: HttpRequest) -> dict[str, Any]:
    """``tenant_id`` and ``provider_id`` of a portal host's tenant (both None on the console host), for
    ``security_event_record``."""
    tenant = getattr(request, "portal_tenant", None)
    if tenant is None:
        return {"tenant_id": None, "provider_id": None}
    return {"tenant_id": tenant.pk, "provider_id": tenant.provider_id}


def login_of(credentials: dict[str, Any]) -> str:
    """The address typed into the sign-in form, lower-case (never the password)."""
    return str(credentials.get("email", credentials.get("username", ""))).strip().lower()


CONSOLE_SITE_NAME = "MSP ITSM"


@dataclass(frozen=True)
class MailSite:
    """What allauth's email templates call ``current_site``: the name they greet with and the host."""

    name: str
    domain: str


def site_name(request: HttpRequest | None) -> str:
    """The name account email is sent under: on a portal host the tenant's portal title (its branding,
    else "<tenant> · IT help", as the portal's pages show it); on the console host the platform's."""
    tenant = getattr(request, "portal_tenant", None)
    return CONSOLE_SITE_NAME if tenant is None else tenant_site_name(tenant)


def tenant_site_name(tenant: Tenant) -> str:
    """The tenant's portal title (its branding), else "<tenant> · IT help", as the portal's pages show it."""
    from tenants.selectors import branding_get

    return branding_get(tenant=tenant).portal_title or f"{tenant.name} · IT help"


def sign_in_methods(request: HttpRequest, user: AbstractBaseUser) -> str:
    """How this session's user proved who they are, in order, joined by "+": allauth's authentication
    records (``password``, ``socialaccount`` for OpenID Connect, ``mfa``) and ours (``saml``), e.g.
    ``saml+mfa``; ``password`` when nothing was recorded."""
    methods = [str(r.get("method")) for r in get_authentication_records(request, user)]
    return "+".join(methods) or "password"


class AccountAdapter(DefaultAccountAdapter):
    # The lockout says what happened and for how long, the same way whether the account exists or not
    # (ACCOUNT_RATE_LIMITS "login_failed": failures age out of a 15-minute window).
    error_messages = {
        **DefaultAccountAdapter.error_messages,
        "too_many_login_attempts": (
            "Too many failed sign-in attempts. Signing in is paused for up to 15 minutes; try again later "
            "or reset your password."
        ),
    }

    def send_mail(self, template_prefix: str, email: str, context: dict[str, Any]) -> None:
        """allauth's mail (verification, reset, notices) greets and signs with this host's name, or with
        the ``current_site`` (a MailSite) the caller passes: mail sent about a tenant's user from the
        console (``user_mfa_reset``) carries the tenant's portal name. Works without a request."""
        request = allauth_context.request
        host = request.get_host() if request is not None else ""
        site = context.get("current_site")
        if not isinstance(site, MailSite):
            site = MailSite(site_name(request), host)
        self._mail_site = site
        # allauth's own send_mail, without its get_current_site(request): mail sent after commit may have
        # no request (a test running the callbacks, a task).
        ctx = {"request": request, "email": email, **context, "current_site": site}
        self.render_mail(template_prefix, email, ctx).send()

    def format_email_subject(self, subject: str) -> str:
        """``[<portal title or platform name>] <subject>`` (the name the mail being sent greets with)."""
        site = getattr(self, "_mail_site", None)
        name = site.name if isinstance(site, MailSite) else site_name(allauth_context.request)
        return f"[{name}] {subject}"

    def is_open_for_signup(self, request: HttpRequest) -> bool:
        """Users are created by their provider or by provisioning, never by self-signup."""
        return False

    def get_client_ip(self, request: HttpRequest) -> str:
        """The address rate limits count by: ``client_ip`` (REMOTE_ADDR; X-Forwarded-For is never trusted)."""
        ip = client_ip(request)
        if not ip:
            raise PermissionDenied("Unable to determine client IP address")
        return ip

    def _get_login_attempts_cache_key(self, request: HttpRequest, **credentials: Any) -> str:
        """The per-account key of allauth's ``login_failed`` limit: the address alone, not allauth's
        ``<host>:<address>``. A user is global and has one password on every host, so failures on the
        console and on every portal count together; a per-host key would give an attacker 10 guesses per
        portal host. (The key holds no tenant data, so PITFALLS' "tenant in cache keys" does not apply.)"""
        return f"account:{login_of(credentials)}"

    def pre_authenticate(self, request: HttpRequest, **credentials: Any) -> None:
        """allauth's failed-sign-in limit; a refusal is recorded as ``login.locked`` (who, from where)."""
        try:
            super().pre_authenticate(request, **credentials)
        except ValidationError:
            login = login_of(credentials)
            user = User.objects.filter(email=login).only("pk").first()
            security_event_record(
                verb="login.locked",
                user_id=user.pk if user else None,
                ip=client_ip(request),
                details={"login": login, "host": request.get_host()},
                **where(request),
            )
            raise

    def authentication_failed(self, request: HttpRequest, **credentials: Any) -> None:
        """A wrong address or password: ``login.failed`` (the attempt already counted toward the limit)."""
        self._record_failure(request, credentials, reason="bad_credentials")

    def _record_failure(self, request: HttpRequest, credentials: dict[str, Any], *, reason: str) -> None:
        login = login_of(credentials)
        user = User.objects.filter(email=login).only("pk").first()
        security_event_record(
            verb="login.failed",
            user_id=user.pk if user else None,
            ip=client_ip(request),
            details={"login": login, "host": request.get_host(), "reason": reason},
            **where(request),
        )

    def login(self, request: HttpRequest, user: AbstractBaseUser) -> None:
        """Sign in (Django's login rotates the session id), bind the session to this host (see
        tenants.routing.session_host_check) and record ``login.succeeded``."""
        super().login(request, user)
        from tenants.routing import SESSION_HOST_KEY, hostname_of

        request.session[SESSION_HOST_KEY] = hostname_of(request)
        security_event_record(
            verb="login.succeeded",
            user_id=user.pk,
            ip=client_ip(request),
            details={"method": sign_in_methods(request, user), "host": request.get_host()},
            **where(request),
        )

    def get_logout_redirect_url(self, request: HttpRequest) -> str:
        """Where "Sign out" goes once our session ends: on to the identity provider's single logout when
        this session signed in through SAML or OpenID Connect and the IdP offers one
        (``sso.logout.idp_logout_url``), else the sign-in page. allauth asks before it signs out."""
        from sso.logout import idp_logout_url  # sso builds on this app: imported when used

        return idp_logout_url(request) or super().get_logout_redirect_url(request)

    def authenticate(self, request: HttpRequest, **credentials: Any) -> AbstractBaseUser | None:
        """On a portal host, a user without a membership in that tenant fails like a wrong password, and
        the attempt counts toward the failed-sign-in limit like one."""
        user = super().authenticate(request, **credentials)
        tenant = getattr(request, "portal_tenant", None)
        if user is not None and tenant is not None:
            assert isinstance(user, User)
            if portal_role_get(user=user, tenant=tenant) is None:
                self.pre_authenticate(request, **credentials)  # consume one failure, as a wrong password does
                self._record_failure(request, credentials, reason="no_role_here")
                return None
        return user


class MfaAdapter(DefaultMFAAdapter):
    def encrypt(self, text: str) -> str:
        """TOTP secrets are stored encrypted (controlplane.accounts.crypto), not as allauth's plain text."""
        return secret_seal(text, purpose=TOTP_SECRET)

    def decrypt(self, encrypted_text: str) -> str:
        return secret_unseal(encrypted_text, purpose=TOTP_SECRET)

    def can_delete_authenticator(self, authenticator: Authenticator) -> bool:
        """A user who must use two-factor authentication keeps their last authenticator app or security
        key (they may add another first); recovery codes alone are no second factor."""
        if authenticator.type not in SECOND_FACTORS:
            return True
        user = authenticator.user
        assert isinstance(user, User)
        others = Authenticator.objects.filter(user=user, type__in=SECOND_FACTORS).exclude(pk=authenticator.pk)
        return others.exists() or not mfa_required(user=user)
