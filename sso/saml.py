"""python3-saml settings for one connection, and the URLs of its service provider.

Every connection has its own SP entity id, ACS URL and SLO URL, built from a host we validated: a
tenant's connection answers on the tenant's primary portal host (its platform Domain row), a provider's on
the console (``CONSOLE_BASE_URL``). The scheme and port of portal hosts follow ``CONSOLE_BASE_URL``
(``http://127.0.0.1:8000`` in development gives ``http://acme.localhost:8000``). The settings are strict
(PITFALLS.md "SAML"); see docs/decisions/0015-saml-service-provider.md.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.http import HttpRequest
from onelogin.saml2.constants import OneLogin_Saml2_Constants as C

from tenants.models import Domain

from .models import OidcConnection, SamlConnection


def portal_base_url(hostname: str) -> str:
    """``scheme://hostname[:port]`` of a portal host, scheme and port taken from ``CONSOLE_BASE_URL``."""
    console = urlsplit(settings.CONSOLE_BASE_URL)
    port = f":{console.port}" if console.port else ""
    return f"{console.scheme}://{hostname}{port}"


def sp_base_url(connection: SamlConnection | OidcConnection) -> str:
    """Where this connection's endpoints live (no trailing slash; SAML SP endpoints, OIDC redirect URI).
    Tenant connections: the tenant's primary verified Domain; provider connections: ``CONSOLE_BASE_URL``."""
    if connection.tenant_id is None:
        return settings.CONSOLE_BASE_URL.rstrip("/")
    domain = (
        Domain.objects.filter(tenant_id=connection.tenant_id, is_primary=True, verified_at__isnull=False)
        .values_list("domain", flat=True)
        .first()
    )
    if domain is None:  # every provisioned tenant has one; a tenant without is misconfigured
        raise LookupError(f"tenant {connection.tenant_id} has no primary portal domain")
    return portal_base_url(domain)


def sp_urls(connection: SamlConnection) -> dict[str, str]:
    """The SP's entity id (= its metadata URL), ACS, SLO and sign-in start URLs, absolute."""
    base = f"{sp_base_url(connection)}/sso/saml/{connection.pk}"
    return {
        "entity_id": f"{base}/metadata/",
        "metadata": f"{base}/metadata/",
        "acs": f"{base}/acs/",
        "sls": f"{base}/sls/",
        "login": f"{base}/login/",
    }


def saml_settings(connection: SamlConnection, *, for_logout: bool = False) -> dict[str, Any]:
    """The python3-saml settings dict of ``connection``.

    Strict; assertions must be signed (``wantAssertionsSigned``); our AuthnRequests and logout messages
    are signed (RSA-SHA256); SHA-1 and other deprecated algorithms are refused
    (``rejectDeprecatedAlgorithm``). ``wantMessagesSigned`` is on for logout messages (``for_logout``), so
    nobody can end a user's session with an unsigned LogoutRequest, and off for the SSO Response, where
    the signed assertion carries what we rely on (its own SubjectConfirmationData is checked, see
    ``services``)."""
    urls = sp_urls(connection)
    idp: dict[str, Any] = {
        "entityId": connection.idp_entity_id,
        "singleSignOnService": {"url": connection.idp_sso_url, "binding": C.BINDING_HTTP_REDIRECT},
        "x509certMulti": {"signing": list(connection.idp_certs)},
    }
    if connection.idp_slo_url:
        idp["singleLogoutService"] = {"url": connection.idp_slo_url, "binding": C.BINDING_HTTP_REDIRECT}
    return {
        "strict": True,
        "debug": False,
        "sp": {
            "entityId": urls["entity_id"],
            "assertionConsumerService": {"url": urls["acs"], "binding": C.BINDING_HTTP_POST},
            "singleLogoutService": {"url": urls["sls"], "binding": C.BINDING_HTTP_REDIRECT},
            "NameIDFormat": C.NAMEID_UNSPECIFIED,
            "x509cert": connection.sp_certificate,
            "privateKey": connection.sp_private_key,
        },
        "idp": idp,
        "security": {
            "authnRequestsSigned": True,
            "logoutRequestSigned": True,
            "logoutResponseSigned": True,
            "signMetadata": False,
            "wantAssertionsSigned": True,
            "wantMessagesSigned": for_logout,
            "wantAssertionsEncrypted": False,
            "wantNameIdEncrypted": False,
            "wantNameId": True,
            "wantAttributeStatement": False,
            "requestedAuthnContext": False,
            "rejectDeprecatedAlgorithm": True,
            "signatureAlgorithm": C.RSA_SHA256,
            "digestAlgorithm": C.SHA256,
            "allowRepeatAttributeName": True,
        },
    }


def request_data(request: HttpRequest) -> dict[str, Any]:
    """python3-saml's view of an HTTP request. ``http_host`` is the Host header as received (with its
    port); the routing middleware already proved the host belongs to this tenant (or the console), and
    python3-saml compares the URL built from it with the Destination and Recipient."""
    return {
        "https": "on" if request.is_secure() else "off",
        "http_host": request.get_host(),
        "script_name": request.path,
        "get_data": request.GET.copy(),
        "post_data": request.POST.copy(),
        "query_string": request.META.get("QUERY_STRING", ""),
    }
