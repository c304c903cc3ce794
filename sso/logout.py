"""Single logout from the header's "Sign out" (decisions 0015 and 0017).

Everyone signs out through allauth's ``account_logout`` (POST). Before allauth ends the session it asks the
account adapter where to go next; ``idp_logout_url`` answers from what this session remembers of how it
signed in: a SAML sign-in goes on to its IdP with a signed LogoutRequest (SAML 2.0 profiles §4.4, the
IdP's LogoutResponse comes back to the connection's SLS), an OpenID Connect sign-in to its OP's
``end_session_endpoint`` (OpenID Connect RP-Initiated Logout 1.0), each only when the IdP offers one and
the connection is still active on this host. Otherwise the answer is None and allauth goes to the
sign-in page: our session ends either way.
"""

from __future__ import annotations

import logging
import uuid
from urllib.parse import urlencode

import requests
from allauth.account.internal.flows.login import get_authentication_records
from allauth.socialaccount.providers.openid_connect.views import OpenIDConnectOAuth2Adapter
from django.http import HttpRequest
from django.urls import reverse

from controlplane.accounts.models import User
from controlplane.accounts.services import client_ip, security_event_record
from tenants.routing import hostname_of

from . import selectors, services
from .models import OidcConnection, SamlConnection
from .saml import request_data, sp_base_url

log = logging.getLogger(__name__)

# The session's record of a SAML sign-in: {"connection", "name_id", "name_id_format", "session_index"},
# set by the ACS; read by single logout (ours and the IdP's).
SESSION_SAML_KEY = "_saml"


def idp_logout_url(request: HttpRequest) -> str | None:
    """The URL that continues "Sign out" at the identity provider this session signed in through, or
    None (no SSO sign-in, the IdP offers no logout, the connection is gone or inactive here).

    Called by the account adapter while the session is still signed in; records ``sso.saml.logout`` or
    ``sso.oidc.logout`` (details: connection, ``idp``: whether the browser is sent to the IdP)."""
    user = request.user
    if not isinstance(user, User):
        return None
    hostname = hostname_of(request)
    saml = request.session.get(SESSION_SAML_KEY) or {}
    if saml.get("connection"):
        connection = selectors.connection_for_host(
            connection_id=uuid.UUID(saml["connection"]), hostname=hostname
        )
        if connection is not None:
            url = services.saml_logout_start(
                connection=connection,
                request_data=request_data(request),
                name_id=saml["name_id"],
                name_id_format=saml.get("name_id_format", ""),
                session_index=saml.get("session_index", ""),
            )
            _record("sso.saml.logout", request, user, connection, idp=url is not None)
            return url
    for record in reversed(get_authentication_records(request, user)):
        if record.get("method") != "socialaccount":
            continue
        oidc = selectors.oidc_connection_for_host(provider_id=str(record.get("provider")), hostname=hostname)
        if oidc is None:
            return None
        url = oidc_end_session_url(request, oidc)
        _record("sso.oidc.logout", request, user, oidc, idp=url is not None)
        return url
    return None


def oidc_end_session_url(request: HttpRequest, connection: OidcConnection) -> str | None:
    """The OP's ``end_session_endpoint`` (from its discovery document, fetched like allauth does at
    sign-in) with ``client_id`` and ``post_logout_redirect_uri`` (RP-Initiated
    Logout 1.0 §2; the OP must have that URI registered for the client, the connection page shows it).
    None when the OP publishes no such endpoint (Google) or its discovery cannot be read (logged)."""
    try:
        config = OpenIDConnectOAuth2Adapter(request, connection.app_provider_id).openid_config
    except (requests.RequestException, ValueError):
        log.warning("OIDC discovery of %s failed at sign-out", connection.pk, exc_info=True)
        return None
    endpoint = config.get("end_session_endpoint")
    if not isinstance(endpoint, str) or not endpoint.startswith(("https://", "http://")):
        return None
    query = urlencode(
        {
            "client_id": connection.client_id,
            "post_logout_redirect_uri": post_logout_redirect_uri(connection),
        }
    )
    return f"{endpoint}{'&' if '?' in endpoint else '?'}{query}"


def post_logout_redirect_uri(connection: OidcConnection) -> str:
    """Where the OP sends the browser after its logout, to be registered at the OP: the sign-in page on
    the host that owns the connection (the tenant's primary portal host, or the console)."""
    return f"{sp_base_url(connection)}{reverse('account_login')}"


def _record(
    verb: str,
    request: HttpRequest,
    user: User,
    connection: SamlConnection | OidcConnection,
    *,
    idp: bool,
) -> None:
    security_event_record(
        verb=verb,
        user_id=user.pk,
        provider_id=services.owner_provider_id(connection),
        tenant_id=connection.tenant_id,
        ip=client_ip(request),
        details={"connection": str(connection.pk), "idp": idp},
    )
