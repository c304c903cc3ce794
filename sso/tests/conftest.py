"""Fixtures of the SAML tests: a real pysaml2 IdP, connections of tenant A, tenant B and the provider,
and ``saml_sign_in`` which runs the browser's part of the flow through our real endpoints."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from django.test import Client

from controlplane.providers.models import Provider
from sso.models import SamlConnection
from sso.saml import sp_urls
from sso.services import connection_create
from tenants.models import Tenant
from tests.integration.conftest import smtp  # noqa: F401 (the real SMTP server, for emailed codes)

from .idp import TestIdp, encode

PORTAL_A = "acme.localhost:8000"  # CONSOLE_BASE_URL is http://127.0.0.1:8000: portals share its port
PORTAL_B = "globex.localhost:8000"
CONSOLE = "127.0.0.1:8000"
ADMIN_RULES = [{"attribute": "groups", "value": "IT-Admins", "role": "client_admin"}]


@pytest.fixture
def idp(tmp_path: Path) -> TestIdp:
    return TestIdp(tmp_path / "idp")


@pytest.fixture
def acme_sso(tenant_a: Tenant, idp: TestIdp) -> SamlConnection:
    return connection_create(
        actor_user_id=None,
        actor_role="admin",
        tenant=tenant_a,
        name="Acme IdP",
        metadata_xml=idp.metadata_xml(),
        email_domains=["acme.example"],
        role_rules=ADMIN_RULES,
    )


@pytest.fixture
def globex_sso(tenant_b: Tenant, idp: TestIdp) -> SamlConnection:
    """Tenant B trusts the very same IdP (a shared IdP service): only our per-connection checks differ."""
    return connection_create(
        actor_user_id=None,
        actor_role="admin",
        tenant=tenant_b,
        name="Globex IdP",
        metadata_xml=idp.metadata_xml(),
        email_domains=["globex.example"],
        role_rules=[],
    )


@pytest.fixture
def provider_sso(provider: Provider, idp: TestIdp) -> SamlConnection:
    return connection_create(
        actor_user_id=None,
        actor_role="owner",
        provider=provider,
        name="Northwind IdP",
        metadata_xml=idp.metadata_xml(),
        email_domains=["northwind.example"],
        role_rules=[],
    )


def host_of(connection: SamlConnection) -> str:
    return str(urlsplit(sp_urls(connection)["acs"]).netloc)


@dataclass
class Attempt:
    client: Client
    response: Any  # the ACS answer
    xml: str  # what was posted (after any change)
    request_id: str | None


def start(client: Client, connection: SamlConnection) -> str:
    """GET our login endpoint; return the AuthnRequest id the IdP reads from the redirect."""
    login = client.get(urlsplit(sp_urls(connection)["login"]).path + "?next=/")
    assert login.status_code == 302, login.status_code
    return str(login["Location"])


@pytest.fixture
def saml_sign_in(idp: TestIdp) -> Callable[..., Attempt]:
    """``saml_sign_in(connection, name_id=, email=, groups=, ...)``: start at our login URL (the SP issues a
    signed AuthnRequest), let the IdP answer it, optionally change the XML, POST it to an ACS.

    ``post_to``: the connection whose ACS receives the POST (default: the same); ``issuer``: another
    TestIdp signing instead; ``in_response_to``: override the request id ("" = none); ``audience``;
    ``mutate``: XML text -> XML text after signing; ``client``: reuse a browser."""

    def run(
        connection: SamlConnection,
        *,
        name_id: str = "subject-1",
        email: str = "alice@acme.example",
        groups: tuple[str, ...] = (),
        post_to: SamlConnection | None = None,
        issuer: TestIdp | None = None,
        in_response_to: str | None = None,
        audience: str | None = None,
        mutate: Callable[[str], str] | None = None,
        client: Client | None = None,
        relay_state: str = "/",
        xml: str | None = None,
        sign_assertion: bool = True,
        sign_response: bool = False,
        algorithms: dict[str, str] | None = None,
    ) -> Attempt:
        target = post_to or connection
        browser = client or Client(HTTP_HOST=host_of(target))
        request_id: str | None = None
        if xml is None:
            starter = browser if target.pk == connection.pk else Client(HTTP_HOST=host_of(connection))
            metadata = starter.get(urlsplit(sp_urls(connection)["metadata"]).path)
            assert metadata.status_code == 200
            signer = issuer or idp
            signer.trust(metadata.content.decode())
            request = signer.read_request(start(starter, connection))
            request_id = request.id
            assert request.assertion_consumer_service_url == sp_urls(connection)["acs"]
            urls = sp_urls(connection)
            irt = request_id if in_response_to is None else (in_response_to or None)
            identity: dict[str, list[str]] = {"mail": [email], "displayName": [name_id.title()]}
            if groups:
                identity["groups"] = list(groups)
            xml = signer.response_xml(
                in_response_to=irt,
                acs_url=urls["acs"],
                audience=audience or urls["entity_id"],
                name_id=name_id,
                identity=identity,
                sign_assertion=sign_assertion,
                sign_response=sign_response,
                **(algorithms or {}),
            )
            if mutate is not None:
                xml = mutate(xml)
        acs_path = urlsplit(sp_urls(target)["acs"]).path
        response = browser.post(acs_path, {"SAMLResponse": encode(xml), "RelayState": relay_state})
        return Attempt(client=browser, response=response, xml=xml, request_id=request_id)

    return run
