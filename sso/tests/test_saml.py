"""SAML sign-in against a real pysaml2 IdP over the HTTP-POST binding: success cases and attacks.

Every refusal: 403, nothing created (no user, membership, identity, person), one ``sso.saml.refused``
SecurityEvent naming the reason and the client's ip."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from django.db.models import Model
from django_tenants.utils import tenant_context
from lxml import etree

from conftest import make_user
from controlplane.accounts.models import (
    ProviderMembership,
    SecurityEvent,
    TenantGrant,
    TenantMembership,
    User,
)
from controlplane.accounts.services import provider_membership_set, tenant_membership_set
from modules.people.models import Person
from sso.models import SamlAssertionSeen, SamlConnection, SamlIdentity, SamlRequest
from sso.saml import sp_urls
from tenants.models import Tenant
from tenants.routing import SESSION_HOST_KEY

from .conftest import Attempt
from .idp import TestIdp

NS = {
    "samlp": "urn:oasis:names:tc:SAML:2.0:protocol",
    "saml": "urn:oasis:names:tc:SAML:2.0:assertion",
    "ds": "http://www.w3.org/2000/09/xmldsig#",
}

pytestmark = pytest.mark.django_db


def counts(*tenants: Tenant) -> dict[str, int]:
    """Rows a sign-in could create: users, memberships, grants, identities, and persons per tenant."""
    result: dict[str, int] = {}
    model: type[Model]
    for model in (User, TenantMembership, ProviderMembership, TenantGrant, SamlIdentity):
        result[model.__name__] = model.objects.count()
    for tenant in tenants:
        with tenant_context(tenant):
            result[f"Person@{tenant.slug}"] = Person.objects.count()
    return result


@contextmanager
def refused(reason: str, *tenants: Tenant) -> Iterator[list[Attempt]]:
    """Run the block's attempt(s) (append them to the yielded list): each must answer 403, create
    nothing, and leave one ``sso.saml.refused`` event with ``reason`` and the ip."""
    before = counts(*tenants)
    events = SecurityEvent.objects.filter(verb="sso.saml.refused").count()
    attempts: list[Attempt] = []
    yield attempts
    assert attempts, "the block made no attempt"
    for attempt in attempts:
        assert attempt.response.status_code == 403, attempt.response.status_code
        assert "_auth_user_id" not in attempt.client.session
    assert counts(*tenants) == before
    new = list(SecurityEvent.objects.filter(verb="sso.saml.refused").order_by("-id")[: len(attempts)])
    assert SecurityEvent.objects.filter(verb="sso.saml.refused").count() == events + len(attempts)
    for event in new:
        assert event.details["reason"] == reason, event.details
        assert event.ip == "127.0.0.1"


# --- success ----------------------------------------------------------------------------------------


def test_first_login_creates_the_end_user_with_the_mapped_role_and_person(
    tenant_a: Tenant, tenant_b: Tenant, acme_sso: SamlConnection, saml_sign_in: Callable[..., Attempt]
) -> None:
    from django.test import Client

    browser = Client(HTTP_HOST="acme.localhost:8000")
    assert browser.get("/sso/start/").status_code == 200  # sets a CSRF cookie
    anonymous_session = browser.session.session_key  # an anonymous session (a fixation attempt's)
    anonymous_csrf = browser.cookies["csrftoken"].value
    attempt = saml_sign_in(
        acme_sso,
        name_id="alice-1",
        email="Alice@Acme.example",
        groups=("IT-Admins",),
        relay_state="/knowledge/",
        client=browser,
    )
    assert attempt.response.status_code == 302
    # django.contrib.auth.login ran: new session id, new CSRF token.
    assert browser.cookies["sessionid"].value != anonymous_session
    assert browser.cookies["csrftoken"].value != anonymous_csrf
    assert attempt.response["Location"] == "/knowledge/"
    user = User.objects.get(email="alice@acme.example")
    assert not user.has_usable_password()
    assert TenantMembership.objects.get(user=user).role == "client_admin"
    assert TenantMembership.objects.get(user=user).tenant == tenant_a
    assert not ProviderMembership.objects.filter(user=user).exists()
    identity = SamlIdentity.objects.get(user=user)
    assert (identity.connection, identity.idp_entity_id, identity.name_id) == (
        acme_sso,
        acme_sso.idp_entity_id,
        "alice-1",
    )
    with tenant_context(tenant_a):
        assert Person.objects.get(user_id=user.pk).email == "alice@acme.example"
    session = attempt.client.session
    assert session["_auth_user_id"] == str(user.pk)
    assert session["_auth_user_backend"] == "allauth.account.auth_backends.AuthenticationBackend"
    assert session[SESSION_HOST_KEY] == "acme.localhost"
    event = SecurityEvent.objects.get(verb="sso.saml.login")
    assert (event.user_id, event.tenant_id, event.ip, event.details["created"]) == (
        user.pk,
        tenant_a.pk,
        "127.0.0.1",
        True,
    )
    assert not SamlRequest.objects.filter(request_id=attempt.request_id).exists()  # consumed
    assert SamlAssertionSeen.objects.filter(connection=acme_sso).count() == 1
    # The session works on the portal; the same cookie on another tenant's host is signed out there.
    assert attempt.client.get("/", HTTP_HOST="acme.localhost:8000").status_code == 200
    assert attempt.client.get("/", HTTP_HOST="globex.localhost:8000").status_code == 302


def test_default_role_without_a_matching_rule(
    acme_sso: SamlConnection, saml_sign_in: Callable[..., Attempt]
) -> None:
    assert (
        saml_sign_in(
            acme_sso, name_id="erin", email="erin@acme.example", groups=("Staff",)
        ).response.status_code
        == 302
    )
    assert TenantMembership.objects.get(user__email="erin@acme.example").role == "end_user"


def test_second_login_reuses_the_identity(
    tenant_a: Tenant, acme_sso: SamlConnection, saml_sign_in: Callable[..., Attempt]
) -> None:
    first = saml_sign_in(acme_sso, name_id="alice-1", email="alice@acme.example")
    assert first.response.status_code == 302
    # Same subject, email changed at the IdP: found by the identity, not by email.
    second = saml_sign_in(acme_sso, name_id="alice-1", email="alice.new@acme.example", client=first.client)
    assert second.response.status_code == 302
    assert User.objects.count() == 1 and SamlIdentity.objects.count() == 1
    assert SecurityEvent.objects.filter(verb="sso.saml.login").count() == 2
    assert SecurityEvent.objects.filter(verb="sso.saml.login").last().details["created"] is False  # type: ignore[union-attr]


def test_provider_connection_creates_a_technician_without_any_grant(
    provider: Any, tenant_a: Tenant, provider_sso: SamlConnection, saml_sign_in: Callable[..., Attempt]
) -> None:
    attempt = saml_sign_in(
        provider_sso, name_id="tech-9", email="nina@northwind.example", groups=("IT-Admins",)
    )
    assert attempt.response.status_code == 302
    user = User.objects.get(email="nina@northwind.example")
    membership = ProviderMembership.objects.get(user=user)
    assert (membership.provider_id, membership.role, membership.all_clients) == (
        provider.pk,
        "technician",
        False,
    )
    assert not TenantGrant.objects.filter(membership=membership).exists()
    assert not TenantMembership.objects.filter(user=user).exists()
    assert attempt.client.session[SESSION_HOST_KEY] == "127.0.0.1"
    # The technician reaches no client until one is granted in the console.
    assert attempt.client.get("/t/acme/incidents/").status_code == 404


def test_signed_response_and_assertion_are_accepted(
    acme_sso: SamlConnection, saml_sign_in: Callable[..., Attempt]
) -> None:
    attempt = saml_sign_in(acme_sso, name_id="both", email="both@acme.example", sign_response=True)
    assert attempt.response.status_code == 302
    assert "Signature" in attempt.xml.split("<ns1:Assertion", 1)[0]  # the Response's own signature


def test_relay_state_is_only_a_same_host_path(
    acme_sso: SamlConnection, saml_sign_in: Callable[..., Attempt]
) -> None:
    for n, evil in enumerate(
        ("https://evil.example/", "//evil.example/x", "/\\evil.example", "javascript:alert(1)")
    ):
        attempt = saml_sign_in(acme_sso, name_id=f"r{n}", email=f"r{n}@acme.example", relay_state=evil)
        assert attempt.response.status_code == 302
        assert attempt.response["Location"] == "/", evil


def test_sp_metadata_names_this_connections_entity_id_and_acs(acme_sso: SamlConnection) -> None:
    from django.test import Client

    urls = sp_urls(acme_sso)
    assert urls["acs"] == f"http://acme.localhost:8000/sso/saml/{acme_sso.pk}/acs/"
    response = Client(HTTP_HOST="acme.localhost:8000").get(f"/sso/saml/{acme_sso.pk}/metadata/")
    assert response.status_code == 200
    body = response.content.decode()
    assert f'entityID="{urls["entity_id"]}"' in body and urls["acs"] in body
    assert 'AuthnRequestsSigned="true"' in body and 'WantAssertionsSigned="true"' in body
    # Another tenant's host, and the console, do not serve it.
    assert Client(HTTP_HOST="globex.localhost").get(f"/sso/saml/{acme_sso.pk}/metadata/").status_code == 404
    assert Client(HTTP_HOST="testserver").get(f"/sso/saml/{acme_sso.pk}/metadata/").status_code == 404


def test_authn_request_is_signed_and_remembered(acme_sso: SamlConnection, idp: TestIdp) -> None:
    from urllib.parse import parse_qs, urlsplit

    from django.test import Client

    from .conftest import start

    location = start(Client(HTTP_HOST="acme.localhost:8000"), acme_sso)
    query = parse_qs(urlsplit(location).query)
    assert location.startswith("https://idp.acme.example/saml/sso?")
    assert query["SigAlg"] == ["http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"] and query["Signature"]
    request = idp.read_request(location)
    stored = SamlRequest.objects.get(request_id=request.id)
    assert stored.connection == acme_sso and stored.expires_at > dt.datetime.now(dt.UTC)


def test_inactive_connection_answers_404(acme_sso: SamlConnection) -> None:
    from django.test import Client

    acme_sso.is_active = False
    acme_sso.save()
    assert Client(HTTP_HOST="acme.localhost:8000").get(f"/sso/saml/{acme_sso.pk}/login/").status_code == 404


# --- attacks ----------------------------------------------------------------------------------------


def test_name_id_changed_after_signing(
    tenant_a: Tenant, acme_sso: SamlConnection, saml_sign_in: Callable[..., Attempt]
) -> None:
    with refused("signature", tenant_a) as attempts:
        attempts.append(
            saml_sign_in(acme_sso, name_id="alice-1", mutate=lambda x: x.replace(">alice-1<", ">ceo-0<"))
        )


def _drop_signatures(xml: str) -> str:
    root = etree.fromstring(xml.encode())
    for signature in root.findall(".//ds:Signature", NS):
        signature.getparent().remove(signature)
    return etree.tostring(root).decode()


def test_signature_removed(
    tenant_a: Tenant, acme_sso: SamlConnection, saml_sign_in: Callable[..., Attempt]
) -> None:
    with refused("signature", tenant_a) as attempts:
        attempts.append(saml_sign_in(acme_sso, mutate=_drop_signatures))


def test_signed_by_another_key(
    tenant_a: Tenant, tmp_path: Path, acme_sso: SamlConnection, saml_sign_in: Callable[..., Attempt]
) -> None:
    forger = TestIdp(tmp_path / "forger", entity_id=acme_sso.idp_entity_id)  # same entity id, own key
    with refused("signature", tenant_a) as attempts:
        attempts.append(saml_sign_in(acme_sso, issuer=forger))


def _xsw_sibling(xml: str) -> str:
    """XSW: keep the signed assertion, put an unsigned copy naming another subject before it."""
    root = etree.fromstring(xml.encode())
    signed = root.find("saml:Assertion", NS)
    evil = etree.fromstring(etree.tostring(signed))
    for signature in evil.findall("ds:Signature", NS):
        evil.remove(signature)
    evil.set("ID", "_evil")
    evil.find("saml:Subject/saml:NameID", NS).text = "ceo-0"
    signed.addprevious(evil)
    return etree.tostring(root).decode()


def _xsw_wrapped(xml: str) -> str:
    """XSW: the evil assertion takes the signed one's place; the signed one hides inside its Subject's
    SubjectConfirmationData (a reference by ID would still find it)."""
    root = etree.fromstring(xml.encode())
    signed = root.find("saml:Assertion", NS)
    evil = etree.fromstring(etree.tostring(signed))
    for signature in evil.findall("ds:Signature", NS):
        evil.remove(signature)
    evil.set("ID", "_evil")
    evil.find("saml:Subject/saml:NameID", NS).text = "ceo-0"
    root.replace(signed, evil)
    evil.find("saml:Subject/saml:SubjectConfirmation/saml:SubjectConfirmationData", NS).append(signed)
    return etree.tostring(root).decode()


@pytest.mark.parametrize("wrap", [_xsw_sibling, _xsw_wrapped], ids=["sibling", "wrapped"])
def test_signature_wrapping(
    tenant_a: Tenant, acme_sso: SamlConnection, saml_sign_in: Callable[..., Attempt], wrap: Any
) -> None:
    before = counts(tenant_a)
    attempt = saml_sign_in(acme_sso, mutate=wrap)
    assert attempt.response.status_code == 403
    assert counts(tenant_a) == before
    event = SecurityEvent.objects.get(verb="sso.saml.refused")
    assert event.details["reason"] in {"assertion-count", "signature", "schema"}, event.details


def test_sha1_signature_is_refused(
    tenant_a: Tenant, acme_sso: SamlConnection, saml_sign_in: Callable[..., Attempt]
) -> None:
    """The right key, but RSA-SHA1 and a SHA-1 digest (rejectDeprecatedAlgorithm)."""
    from saml2.xmldsig import DIGEST_SHA1, SIG_RSA_SHA1

    with refused("deprecated-algorithm", tenant_a) as attempts:
        attempts.append(
            saml_sign_in(acme_sso, algorithms={"sign_alg": SIG_RSA_SHA1, "digest_alg": DIGEST_SHA1})
        )
    assert "rsa-sha1" in SecurityEvent.objects.get(verb="sso.saml.refused").details["detail"]


def test_wrong_audience(
    tenant_a: Tenant, acme_sso: SamlConnection, saml_sign_in: Callable[..., Attempt]
) -> None:
    with refused("audience", tenant_a) as attempts:
        attempts.append(saml_sign_in(acme_sso, audience="https://evil.example/sp"))


def test_missing_audience_restriction(
    tenant_a: Tenant, acme_sso: SamlConnection, saml_sign_in: Callable[..., Attempt], idp: TestIdp
) -> None:
    """python3-saml skips the audience check without an AudienceRestriction; we require one. The IdP's
    own key signs an assertion that has none (python3-saml's signing helper, as pysaml2 always adds one)."""
    from onelogin.saml2.utils import OneLogin_Saml2_Utils

    def strip_audience_and_sign(xml: str) -> str:
        root = etree.fromstring(xml.encode())
        assertion = root.find("saml:Assertion", NS)
        for restriction in assertion.findall(".//saml:AudienceRestriction", NS):
            restriction.getparent().remove(restriction)
        key, cert = idp.key_pair
        signed = OneLogin_Saml2_Utils.add_sign(etree.tostring(assertion), key, cert)
        root.replace(assertion, etree.fromstring(signed))
        return etree.tostring(root).decode()

    with refused("audience", tenant_a) as attempts:
        attempts.append(saml_sign_in(acme_sso, sign_assertion=False, mutate=strip_audience_and_sign))


def test_response_for_another_tenants_acs(
    tenant_a: Tenant,
    tenant_b: Tenant,
    acme_sso: SamlConnection,
    globex_sso: SamlConnection,
    saml_sign_in: Callable[..., Attempt],
) -> None:
    """Both tenants trust the same IdP. A's valid response posted to B's connection (on B's host)."""
    with refused("destination", tenant_a, tenant_b) as attempts:
        attempts.append(saml_sign_in(acme_sso, email="alice@acme.example", post_to=globex_sso))
    event = SecurityEvent.objects.get(verb="sso.saml.refused")
    assert event.tenant_id == tenant_b.pk


def test_replayed_response(
    tenant_a: Tenant, acme_sso: SamlConnection, saml_sign_in: Callable[..., Attempt]
) -> None:
    first = saml_sign_in(acme_sso, name_id="alice-1")
    assert first.response.status_code == 302
    with refused("replay", tenant_a) as attempts:
        from django.test import Client

        attempts.append(saml_sign_in(acme_sso, xml=first.xml, client=Client(HTTP_HOST="acme.localhost:8000")))


def test_unknown_in_response_to(
    tenant_a: Tenant, acme_sso: SamlConnection, saml_sign_in: Callable[..., Attempt]
) -> None:
    with refused("unknown-in-response-to", tenant_a) as attempts:
        attempts.append(saml_sign_in(acme_sso, in_response_to="_never-issued-by-us"))


def test_request_id_of_another_connection(
    tenant_a: Tenant,
    tenant_b: Tenant,
    acme_sso: SamlConnection,
    globex_sso: SamlConnection,
    saml_sign_in: Callable[..., Attempt],
    idp: TestIdp,
) -> None:
    """An id we issued for tenant B's connection does not answer for tenant A's."""
    from django.test import Client

    from .conftest import start

    globex_request = idp.read_request(start(Client(HTTP_HOST="globex.localhost:8000"), globex_sso)).id
    with refused("unknown-in-response-to", tenant_a, tenant_b) as attempts:
        attempts.append(saml_sign_in(acme_sso, in_response_to=globex_request))


def test_missing_in_response_to(
    tenant_a: Tenant, acme_sso: SamlConnection, saml_sign_in: Callable[..., Attempt]
) -> None:
    with refused("missing-in-response-to", tenant_a) as attempts:
        attempts.append(saml_sign_in(acme_sso, in_response_to=""))


def test_expired_conditions(
    tenant_a: Tenant,
    tmp_path: Path,
    acme_sso: SamlConnection,
    idp: TestIdp,
    saml_sign_in: Callable[..., Attempt],
) -> None:
    """Signed by the right key, but valid until 10 minutes ago (beyond the 120 s skew)."""
    stale = TestIdp(tmp_path / "stale", entity_id=idp.entity_id, key_pair=idp.key_pair, lifetime_minutes=-10)
    with refused("expired", tenant_a) as attempts:
        attempts.append(saml_sign_in(acme_sso, issuer=stale))


def test_email_of_another_tenants_member(
    tenant_a: Tenant, tenant_b: Tenant, acme_sso: SamlConnection, saml_sign_in: Callable[..., Attempt]
) -> None:
    carol = make_user("carol@acme.example")  # works at Acme's address, but is a user of Globex
    tenant_membership_set(user=carol, tenant=tenant_b, role="client_admin")
    with refused("other-owner", tenant_a, tenant_b) as attempts:
        attempts.append(
            saml_sign_in(acme_sso, name_id="carol", email="carol@acme.example", groups=("IT-Admins",))
        )
    assert SecurityEvent.objects.get(verb="sso.saml.refused").user_id == carol.pk
    assert carol.tenant_memberships.count() == 1


def test_email_of_a_technician(
    provider: Any, tenant_a: Tenant, acme_sso: SamlConnection, saml_sign_in: Callable[..., Attempt]
) -> None:
    tech = make_user("it@acme.example")
    provider_membership_set(user=tech, provider=provider, role="technician")
    with refused("other-owner", tenant_a) as attempts:
        attempts.append(saml_sign_in(acme_sso, name_id="it", email="it@acme.example"))


def test_email_outside_the_connections_domains(
    tenant_a: Tenant, acme_sso: SamlConnection, saml_sign_in: Callable[..., Attempt]
) -> None:
    with refused("email-domain", tenant_a) as attempts:
        attempts.append(saml_sign_in(acme_sso, name_id="x", email="ceo@globex.example"))


def test_identity_of_another_connection_is_not_reused(
    tenant_a: Tenant,
    tenant_b: Tenant,
    acme_sso: SamlConnection,
    globex_sso: SamlConnection,
    saml_sign_in: Callable[..., Attempt],
) -> None:
    """A Globex user signed in by Globex's IdP; Acme's connection naming the same email (Acme lists
    globex.example too) is refused: the account is another owner's."""
    acme_sso.email_domains = ["acme.example", "globex.example"]
    acme_sso.save()
    assert saml_sign_in(globex_sso, name_id="gina", email="gina@globex.example").response.status_code == 302
    with refused("other-owner", tenant_a, tenant_b) as attempts:
        attempts.append(saml_sign_in(acme_sso, name_id="gina", email="gina@globex.example"))


def test_technician_connection_cannot_sign_in_a_client_user(
    tenant_a: Tenant, provider_sso: SamlConnection, end_user_a: User, saml_sign_in: Callable[..., Attempt]
) -> None:
    provider_sso.email_domains = ["northwind.example", "acme.example"]
    provider_sso.save()
    with refused("other-owner", tenant_a) as attempts:
        attempts.append(saml_sign_in(provider_sso, name_id="alice", email=end_user_a.email))


def test_a_bare_html_form_post_without_saml_response(tenant_a: Tenant, acme_sso: SamlConnection) -> None:
    from django.test import Client

    client = Client(HTTP_HOST="acme.localhost:8000")
    with refused("no-response", tenant_a) as attempts:
        attempts.append(
            Attempt(
                client=client,
                response=client.post(f"/sso/saml/{acme_sso.pk}/acs/", {}),
                xml="",
                request_id=None,
            )
        )


def test_clock_skew_is_the_setting() -> None:
    from onelogin.saml2.constants import OneLogin_Saml2_Constants

    assert OneLogin_Saml2_Constants.ALLOWED_CLOCK_DRIFT == 120


def test_no_secret_in_refusal_details(
    tenant_a: Tenant, acme_sso: SamlConnection, saml_sign_in: Callable[..., Attempt]
) -> None:
    saml_sign_in(acme_sso, mutate=_drop_signatures)
    details = SecurityEvent.objects.get(verb="sso.saml.refused").details
    assert not re.search(r"PRIVATE KEY", str(details))


def test_account_bound_to_another_connections_identity(
    tenant_a: Tenant, acme_sso: SamlConnection, saml_sign_in: Callable[..., Attempt], tmp_path: Path
) -> None:
    """Two IdPs of the same tenant: an account made through the first is not taken over by the second
    naming the same email (it lists no domains, so only the identity rule stands in the way)."""
    from sso.services import connection_create

    second_idp = TestIdp(tmp_path / "second", entity_id="https://login.acme-partner.example/saml")
    second = connection_create(
        actor_user_id=None,
        actor_role="admin",
        tenant=tenant_a,
        name="Partner IdP",
        metadata_xml=second_idp.metadata_xml(),
        email_domains=[],
        role_rules=[],
    )
    assert saml_sign_in(acme_sso, name_id="alice-1", email="alice@acme.example").response.status_code == 302
    with refused("other-identity", tenant_a) as attempts:
        attempts.append(
            saml_sign_in(second, name_id="whoever", email="alice@acme.example", issuer=second_idp)
        )


def test_client_idp_cannot_mint_accounts_at_the_providers_domain(
    tenant_a: Tenant,
    acme_sso: SamlConnection,
    provider_sso: SamlConnection,
    saml_sign_in: Callable[..., Attempt],
) -> None:
    """Acme listed northwind.example before the provider's own connection did: sign-ins naming the
    provider's domain through Acme's IdP are refused from then on (no end user at the MSP's address)."""
    SamlConnection.objects.filter(pk=acme_sso.pk).update(email_domains=["acme.example", "northwind.example"])
    acme_sso.refresh_from_db()
    with refused("provider-domain", tenant_a) as attempts:
        attempts.append(saml_sign_in(acme_sso, name_id="newtech", email="newtech@northwind.example"))


def test_starting_sign_in_is_limited_per_address_and_a_refused_start_writes_nothing(
    acme_sso: SamlConnection, settings: Any
) -> None:
    """Each start stores an issued AuthnRequest: past SSO_START_LIMIT starts a window from one address,
    429 with Retry-After and no row; another address is not affected."""
    from django.test import Client

    settings.SSO_START_LIMIT = 3
    url = f"/sso/saml/{acme_sso.pk}/login/"
    first = Client(HTTP_HOST="acme.localhost:8000", REMOTE_ADDR="203.0.113.5")
    answers = [first.get(url).status_code for _ in range(3)]
    stored = SamlRequest.objects.count()
    refused = first.get(url)
    other = Client(HTTP_HOST="acme.localhost:8000", REMOTE_ADDR="203.0.113.6").get(url)
    assert answers == [302, 302, 302] and stored == 3
    assert refused.status_code == 429 and 0 < int(refused["Retry-After"]) <= 60
    assert other.status_code == 302 and SamlRequest.objects.count() == 4
