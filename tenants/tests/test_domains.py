"""Custom portal domains: added pending by the provider's owner or admin, proven with a DNS TXT record
looked up (dnspython) against a real small DNS server (dnslib) on a free UDP port, routed only once
verified; the on-demand TLS ``ask`` endpoint answers yes for verified domains only."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any

import pytest
from django.test import Client
from django_tenants.utils import tenant_context
from dnslib import QTYPE, RCODE, RR, TXT
from dnslib.server import BaseResolver, DNSServer

from conftest import actor_in, make_user
from controlplane.accounts.models import User
from controlplane.accounts.services import provider_membership_set, tenant_membership_set
from controlplane.problems import InvalidInput, PermissionDenied
from controlplane.providers.models import Provider
from tenants.models import Domain, Tenant, TenantAuditEntry
from tenants.services import (
    DomainNotProven,
    DomainTaken,
    domain_add,
    domain_challenge_name,
    domain_challenge_value,
    domain_verify,
)
from tenants.validation import hostname_normalise


class Zone(BaseResolver):
    """Answers TXT questions from ``records`` (lower-case name without the final dot -> strings);
    NXDOMAIN for any other name."""

    def __init__(self) -> None:
        self.records: dict[str, list[str]] = {}

    def resolve(self, request: Any, handler: Any) -> Any:
        reply = request.reply()
        name = str(request.q.qname).rstrip(".").lower()
        if name not in self.records:
            reply.header.rcode = RCODE.NXDOMAIN
        elif request.q.qtype == QTYPE.TXT:
            for value in self.records[name]:
                reply.add_answer(RR(request.q.qname, QTYPE.TXT, rdata=TXT(value), ttl=60))
        return reply


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def dns_zone(settings: Any) -> Iterator[Zone]:
    """A DNS server on 127.0.0.1:<free port> that the verification asks (DOMAIN_VERIFY_NAMESERVERS)."""
    zone = Zone()
    port = free_udp_port()
    server = DNSServer(zone, address="127.0.0.1", port=port)
    server.start_thread()
    settings.DOMAIN_VERIFY_NAMESERVERS = [f"127.0.0.1:{port}"]
    settings.DOMAIN_VERIFY_TIMEOUT = 3.0
    try:
        yield zone
    finally:
        server.stop()
        server.server.server_close()


@pytest.fixture
def owner(provider: Provider, tenant_a: Tenant) -> User:
    user = make_user("owner@northwind.example")
    provider_membership_set(user=user, provider=provider, role="owner")
    return user


def console(user: User) -> Client:
    client = Client(HTTP_HOST="testserver")
    client.force_login(user)
    return client


def add(tenant: Tenant, user: User, hostname: str, role: str = "owner") -> Domain:
    with tenant_context(tenant):
        return domain_add(actor=actor_in(tenant, user, role=role), tenant=tenant, hostname=hostname)


def test_hostnames_are_normalised_and_checked() -> None:
    assert hostname_normalise(" Help.Acme.EXAMPLE. ") == "help.acme.example"
    assert hostname_normalise("bücher.example") == "xn--bcher-kva.example"
    for bad in (
        "help.acme.example:8443",
        "https://help.acme.example",
        "10.0.0.1",
        "intranet",
        "-a.example",
        "",
    ):
        with pytest.raises(ValueError):
            hostname_normalise(bad)


def test_a_pending_domain_does_not_route_until_its_txt_proof_is_found(
    tenant_a: Tenant, owner: User, end_user_a: User, dns_zone: Zone
) -> None:
    client = console(owner)
    page = client.post("/t/acme/domains/", {"hostname": "Help.Acme.Example"})
    assert page.status_code == 302
    domain = Domain.objects.get(domain="help.acme.example")
    assert (domain.tenant_id, domain.is_verified, len(domain.challenge_token)) == (tenant_a.pk, False, 32)
    listing = client.get("/t/acme/domains/").content.decode()
    assert "_itsm-challenge.help.acme.example" in listing and domain_challenge_value(domain) in listing
    assert "Pending" in listing

    visitor = Client(HTTP_HOST="help.acme.example")
    assert visitor.get("/accounts/login/").status_code == 404
    assert Client().get("/tls/ask/", {"domain": "help.acme.example"}).status_code == 404

    dns_zone.records[domain_challenge_name(domain)] = ["v=spf1 -all", domain_challenge_value(domain)]
    assert client.post(f"/t/acme/domains/{domain.pk}/verify/").status_code == 302
    domain.refresh_from_db()
    assert domain.is_verified
    assert visitor.get("/accounts/login/").status_code == 200
    assert Client().get("/tls/ask/", {"domain": "HELP.acme.example"}).status_code == 200
    assert list(TenantAuditEntry.objects.filter(tenant=tenant_a).values_list("verb", "actor_user_id")) == [
        ("domain.added", owner.pk),
        ("domain.verified", owner.pk),
    ]
    history = client.get("/t/acme/domains/").content.decode().split("Recent domain changes")[1]
    assert history.index("domain.verified") < history.index("domain.added")  # newest first
    assert owner.full_name in history and "help.acme.example" in history


def test_verify_reports_a_wrong_token_and_a_missing_record_and_writes_nothing(
    tenant_a: Tenant, owner: User, dns_zone: Zone
) -> None:
    domain = add(tenant_a, owner, "help.acme.example")
    with tenant_context(tenant_a):
        actor = actor_in(tenant_a, owner, role="owner")
        with pytest.raises(DomainNotProven, match=r"no TXT record at _itsm-challenge\.help\.acme\.example"):
            domain_verify(actor=actor, domain=domain)
        dns_zone.records[domain_challenge_name(domain)] = ["itsm-verify=someone-elses-token"]
        with pytest.raises(DomainNotProven, match="someone-elses-token"):
            domain_verify(actor=actor, domain=domain)
    page = console(owner).post(f"/t/acme/domains/{domain.pk}/verify/", follow=True).content.decode()
    assert "Not verified" in page
    domain.refresh_from_db()
    assert not domain.is_verified
    assert list(TenantAuditEntry.objects.values_list("verb", flat=True)) == ["domain.added"]


def test_provisioned_domains_are_verified_and_platform_hosts_are_refused(
    tenant_a: Tenant, tenant_b: Tenant, owner: User
) -> None:
    assert Domain.objects.get(tenant=tenant_a).is_verified
    assert Client().get("/tls/ask/", {"domain": "acme.localhost"}).status_code == 200
    for host in ("testserver", "localhost", "globex.localhost", "new.localhost"):
        with pytest.raises(InvalidInput):
            add(tenant_a, owner, host)
    add(tenant_a, owner, "help.acme.example")
    with pytest.raises(DomainTaken):
        add(tenant_a, owner, "HELP.acme.example.")
    page = console(owner).post("/t/acme/domains/", {"hostname": "help.acme.example:443"})
    assert page.status_code == 422 and "no scheme, port or path" in page.content.decode()
    assert Domain.objects.filter(tenant=tenant_a).count() == 2


def test_technicians_and_client_admins_cannot_manage_domains(
    tenant_a: Tenant, tech_a: User, owner: User
) -> None:
    admin = make_user("it@acme.example")
    tenant_membership_set(user=admin, tenant=tenant_a, role="client_admin")
    before = Domain.objects.count()
    with pytest.raises(PermissionDenied):
        add(tenant_a, tech_a, "help.acme.example", role="technician")
    with pytest.raises(PermissionDenied):
        add(tenant_a, admin, "help.acme.example", role="client_admin")
    assert console(tech_a).post("/t/acme/domains/", {"hostname": "help.acme.example"}).status_code == 403
    assert console(admin).get("/t/acme/domains/").status_code == 403
    assert Domain.objects.count() == before and not TenantAuditEntry.objects.exists()
    pending = add(tenant_a, owner, "help.acme.example")
    assert console(tech_a).post(f"/t/acme/domains/{pending.pk}/verify/").status_code == 302
    pending.refresh_from_db()
    assert not pending.is_verified


def test_another_tenants_domain_id_is_not_found(tenant_a: Tenant, tenant_b: Tenant, owner: User) -> None:
    other = add(tenant_b, owner, "help.globex.example")
    client = console(owner)
    assert client.post(f"/t/acme/domains/{other.pk}/verify/").status_code == 404
    assert client.post(f"/t/acme/domains/{other.pk}/remove/").status_code == 404
    assert Domain.objects.filter(pk=other.pk).exists()
