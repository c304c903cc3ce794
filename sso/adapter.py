"""django-allauth's social-account adapter for OpenID Connect connections (SOCIALACCOUNT_ADAPTER).

allauth runs the protocol (state, PKCE, code exchange, ID token iss/aud/exp); this adapter decides who
may sign in (decision 0017): a connection's SocialApp exists only on the host that owns the connection
and while it is active (``list_apps``: elsewhere its login and callback answer 404); before allauth signs
anyone in, ``pre_social_login`` hands the completed sign-in to ``oidc_services.oidc_login_accept`` (nonce,
issuer, owner, JIT provisioning), which either binds ``sociallogin`` to an existing or provisioned user or
refuses (403 page, audited). allauth never signs anyone up by itself, nor connects by email.
"""

from __future__ import annotations

import uuid
from typing import Any

import jwt
from allauth.core.exceptions import ImmediateHttpResponse
from allauth.socialaccount.adapter import DefaultSocialAccountAdapter
from allauth.socialaccount.models import SocialApp, SocialLogin
from allauth.socialaccount.providers.base.constants import AuthError
from django.core.exceptions import ValidationError
from django.http import HttpRequest
from django.shortcuts import render

from controlplane.accounts.services import client_ip
from tenants.routing import hostname_of

from . import oidc_services, selectors
from .models import OidcConnection
from .services import SsoRefused


def _connection_of(provider_id: str) -> OidcConnection | None:
    try:
        key = uuid.UUID(provider_id)
    except (ValueError, TypeError):
        return None
    return OidcConnection.objects.select_related("tenant", "provider", "social_app").filter(pk=key).first()


def refused_response(request: HttpRequest) -> Any:
    """The page of a refused sign-in (403): it says no more than that sign-in failed."""
    base = "portal_base.html" if getattr(request, "portal_tenant", None) is not None else "base.html"
    return render(request, "sso/refused.html", {"base_template": base}, status=403)


def _error_reason(error: Any, exception: BaseException | None, extra_context: dict[str, Any]) -> str:
    """A stable slug for an error allauth reports before our checks run."""
    if error == AuthError.CANCELLED:
        return "cancelled"
    if exception is None:
        return "state" if "state_id" in extra_context else "error"
    cause = exception.__cause__
    if isinstance(cause, jwt.InvalidAudienceError):
        return "audience"
    if isinstance(cause, jwt.InvalidIssuerError):
        return "issuer"
    if isinstance(cause, jwt.ExpiredSignatureError):
        return "expired"
    if isinstance(cause, jwt.PyJWTError):
        return "id-token"
    return "token"


class SocialAccountAdapter(DefaultSocialAccountAdapter):
    def is_open_for_signup(self, request: HttpRequest, sociallogin: SocialLogin) -> bool:
        """Never through allauth's signup: accounts are provisioned in ``pre_social_login``."""
        return False

    def validate_disconnect(self, account: Any, accounts: Any) -> None:
        """A single sign-on identity is the organisation's: its user cannot unlink it (allauth's
        "connections" page answers the error next to the form)."""
        raise ValidationError("This sign-in is managed by your organisation's single sign-on.")

    def list_apps(self, request: HttpRequest, provider: Any = None, client_id: Any = None) -> list[SocialApp]:
        """Only the SocialApps of active connections served on this request's host (a tenant's on its
        portal host, a provider's on the console): any other answers allauth's 404. Each carries its
        connection's client secret, unsealed in memory (never saved)."""
        apps = super().list_apps(request, provider=provider, client_id=client_id)
        if request is None:
            return list(apps)
        hostname = hostname_of(request)
        served = []
        for app in apps:
            connection = selectors.oidc_connection_for_host(provider_id=app.provider_id, hostname=hostname)
            if connection is not None:
                # The stored SocialApp has no secret: the connection keeps it sealed, allauth gets it here,
                # in memory, for this request's code exchange only.
                app.secret = oidc_services.oidc_client_secret(connection)
                served.append(app)
        return served

    def pre_social_login(self, request: HttpRequest, sociallogin: SocialLogin) -> None:
        """Check the sign-in and bind it to its user (``oidc_login_accept``), or answer the refusal."""
        provider_id = str(sociallogin.account.provider)
        connection = _connection_of(provider_id)
        hostname_ok = (
            selectors.oidc_connection_for_host(provider_id=provider_id, hostname=hostname_of(request))
            is not None
        )
        try:
            result = oidc_services.oidc_login_accept(
                connection=connection,
                uid=str(sociallogin.account.uid),
                extra_data=dict(sociallogin.account.extra_data or {}),
                state=dict(sociallogin.state or {}),
                hostname_ok=hostname_ok,
                ip=client_ip(request),
            )
        except SsoRefused as exc:
            raise ImmediateHttpResponse(refused_response(request)) from exc
        sociallogin.user = result.user
        sociallogin.account = result.account

    def on_authentication_error(
        self,
        request: HttpRequest,
        provider: Any,
        error: Any = None,
        exception: Any = None,
        extra_context: Any = None,
    ) -> None:
        """Audit what allauth refused (bad or missing state, a failed code exchange, an ID token for
        another audience...) as ``sso.oidc.refused`` and answer the refusal page."""
        connection = _connection_of(str(getattr(provider.app, "provider_id", "")))
        if connection is not None:
            oidc_services.oidc_refusal_record(
                connection=connection,
                reason=_error_reason(error, exception, extra_context or {}),
                detail=f"{error}: {exception!r}",
                ip=client_ip(request),
            )
        raise ImmediateHttpResponse(refused_response(request))
