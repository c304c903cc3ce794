"""A real SAML 2.0 identity provider for the tests: pysaml2's ``saml2.server.Server`` (signing with
Debian's ``xmlsec1``), with a key pair made at test time. It reads our AuthnRequests and builds the
responses a browser would POST to our ACS; attack variants are made from its signed output."""

from __future__ import annotations

import base64
import datetime as dt
import shutil
from pathlib import Path
from typing import Any

from saml2 import BINDING_HTTP_REDIRECT
from saml2.config import IdPConfig
from saml2.metadata import entity_descriptor
from saml2.saml import NAME_FORMAT_URI, NAMEID_FORMAT_PERSISTENT, NameID
from saml2.server import Server
from saml2.xmldsig import DIGEST_SHA256, SIG_RSA_SHA256

from sso.keys import key_pair_make


class TestIdp:
    """``TestIdp(folder, entity_id)``: an IdP whose SSO and SLO URLs are ``<entity_id>/sso`` and ``/slo``."""

    __test__ = False  # not a test class for pytest

    def __init__(
        self,
        folder: Path,
        entity_id: str = "https://idp.acme.example/saml",
        *,
        key_pair: tuple[str, str] | None = None,
        lifetime_minutes: int = 15,
    ) -> None:
        self.entity_id = entity_id
        folder.mkdir(parents=True, exist_ok=True)
        key, cert = key_pair or key_pair_make(common_name="test-idp")
        self.key_pair = (key, cert)
        self.key_file = folder / "idp.key"
        self.cert_file = folder / "idp.crt"
        self.key_file.write_text(key)
        self.cert_file.write_text(cert)
        xmlsec = shutil.which("xmlsec1")
        assert xmlsec, "pysaml2 needs Debian's xmlsec1 (make xmlsec1)"
        config = IdPConfig()
        config.load(
            {
                "entityid": entity_id,
                "xmlsec_binary": xmlsec,
                "key_file": str(self.key_file),
                "cert_file": str(self.cert_file),
                "metadata": {},
                "service": {
                    "idp": {
                        "name": "Test IdP",
                        "endpoints": {
                            "single_sign_on_service": [(f"{entity_id}/sso", BINDING_HTTP_REDIRECT)],
                            "single_logout_service": [(f"{entity_id}/slo", BINDING_HTTP_REDIRECT)],
                        },
                        "policy": {
                            "default": {
                                "lifetime": {"minutes": lifetime_minutes},
                                "attribute_restrictions": None,
                                "name_form": NAME_FORMAT_URI,
                            }
                        },
                        "name_id_format": [NAMEID_FORMAT_PERSISTENT],
                    }
                },
            }
        )
        self.server = Server(config=config)

    def metadata_xml(self) -> str:
        """The IdP's SAML metadata, as an administrator would paste it."""
        return str(entity_descriptor(self.server.config))

    def trust(self, sp_metadata_xml: str) -> None:
        """Load an SP's metadata (as fetched from its metadata URL), as an IdP administrator would."""
        self.server.metadata.load("inline", sp_metadata_xml)

    def read_request(self, redirect_url: str) -> Any:
        """The AuthnRequest our SP sent in a redirect URL (HTTP-Redirect binding)."""
        from urllib.parse import parse_qs, urlsplit

        query = parse_qs(urlsplit(redirect_url).query)
        return self.server.parse_authn_request(query["SAMLRequest"][0], BINDING_HTTP_REDIRECT).message

    def response_xml(
        self,
        *,
        in_response_to: str | None,
        acs_url: str,
        audience: str,
        name_id: str,
        identity: dict[str, list[str]],
        sign_assertion: bool = True,
        sign_response: bool = False,
        sign_alg: str = SIG_RSA_SHA256,
        digest_alg: str = DIGEST_SHA256,
    ) -> str:
        """A Response (XML text) as the IdP builds it, the assertion (and/or response) signed with its key."""
        result = self.server.create_authn_response(
            identity=identity,
            in_response_to=in_response_to,
            destination=acs_url,
            sp_entity_id=audience,
            name_id=NameID(format=NAMEID_FORMAT_PERSISTENT, text=name_id),
            authn={"class_ref": "urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport"},
            sign_assertion=sign_assertion,
            sign_response=sign_response,
            sign_alg=sign_alg,
            digest_alg=digest_alg,
        )
        return str(result)


def encode(xml: str | bytes) -> str:
    """The SAMLResponse form value (base64 of the XML) of the HTTP-POST binding."""
    return base64.b64encode(xml.encode() if isinstance(xml, str) else xml).decode()


def saml_time(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
