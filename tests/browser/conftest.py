"""Browser-test fixtures: Debian's Chromium driven by Playwright against a live server on the real test
database, with data committed for real (the server answers from its own threads and connections).

- ``chromium``: one headless Chromium for this package (stopped after it, with Playwright's loop) (``/usr/bin/chromium``; ``make test`` installs it
  from Debian when missing; ``playwright install`` is never used).
- ``site``: pytest-django's live server (a threaded WSGI server on 127.0.0.1, a free port) plus two
  committed tenants of one provider, Acme (``acme.localhost``) and Globex (``globex.localhost``), a
  technician with grants for both, an end user of each, and a few incidents. Public rows are flushed by
  ``transactional_db`` afterwards; the tenant schemas are dropped here.
- ``browser_context``: a fresh browser context (its own cookies) per test, closed before the data goes.
- ``catalog``: on top of ``site``, Acme's catalog item with a conditional field and its approver, and
  Globex's item with two requests waiting for approval (``Catalog``).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from django.db import connection
from django_tenants.utils import tenant_context
from playwright.sync_api import Browser, BrowserContext, Playwright, sync_playwright
from psycopg import sql

from conftest import PASSWORD, actor_in, make_user
from controlplane.accounts.models import User
from controlplane.accounts.services import provider_membership_set, tenant_grant, tenant_membership_set
from controlplane.providers.models import Provider
from modules.incidents.services import incident_create
from modules.records.actor import Actor
from modules.requests.models import ApproverRole
from modules.requests.services import StepSpec, catalog_category_create, catalog_item_create, request_submit
from tenants.models import Tenant
from tenants.services import tenant_provision

from .helpers import CHROMIUM, Site


@pytest.fixture(scope="package", autouse=True)
def _orm_beside_playwright() -> Iterator[None]:
    """While this package runs: Playwright's sync API keeps an asyncio loop running on the test's thread,
    and Django refuses ORM calls when it sees one. The test thread only sets up data and reads what the
    browser wrote (the server runs in its own threads), so the check is lifted here and restored after."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
        yield


@pytest.fixture(scope="package")
def playwright_driver() -> Iterator[Playwright]:
    with sync_playwright() as driver:
        yield driver


@pytest.fixture(scope="package")
def chromium(playwright_driver: Playwright) -> Iterator[Browser]:
    """Headless Debian Chromium (as root Playwright passes --no-sandbox itself)."""
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(f"{CHROMIUM} is missing: `make test` installs it (apt-get install chromium)", False)
    browser = playwright_driver.chromium.launch(executable_path=CHROMIUM, headless=True)
    yield browser
    browser.close()


@pytest.fixture
def site(live_server: Any) -> Iterator[Site]:
    """The live server and its committed data (see the module docstring); schemas dropped afterwards."""
    provider = Provider.objects.create(name="Northwind MSP", slug="northwind")
    acme = tenant_provision(provider=provider, name="Acme Corp", slug="acme", time_zone="Europe/London")
    globex = tenant_provision(provider=provider, name="Globex", slug="globex", time_zone="America/New_York")
    tenants = {"acme": acme, "globex": globex}
    tech = make_user("tech@northwind.example")
    membership = provider_membership_set(user=tech, provider=provider, role="technician")
    tenant_grant(membership=membership, tenant=acme)
    tenant_grant(membership=membership, tenant=globex)
    alice = make_user("alice@acme.example")
    tenant_membership_set(user=alice, tenant=acme, role="end_user")
    bob = make_user("bob@globex.example")
    tenant_membership_set(user=bob, tenant=globex, role="end_user")
    titles = {
        "acme": ["Acme: printer on floor 2 jams"],
        "globex": ["Globex: VPN drops every hour", "Globex: payroll export fails"],
    }
    callers = {"acme": alice, "globex": bob}
    incidents: dict[str, list[str]] = {}
    for slug, tenant in tenants.items():
        with tenant_context(tenant):
            caller = actor_in(tenant, callers[slug], role="end_user").person
            actor = actor_in(tenant, tech)
            incidents[slug] = [
                incident_create(actor=actor, short_description=title, caller=caller).number
                for title in titles[slug]
            ]
    port = int(live_server.thread.port)
    yield Site(
        port=port,
        tenants=tenants,
        users={"tech": tech, "alice": alice, "bob": bob},
        incidents=incidents,
    )
    _drop_schemas(list(tenants.values()))


def _drop_schemas(tenants: list[Tenant]) -> None:
    with connection.cursor() as cursor:
        for tenant in tenants:
            cursor.execute(
                sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(tenant.schema_name))
            )


@pytest.fixture
def browser_context(chromium: Browser, site: Site) -> Iterator[BrowserContext]:
    """A fresh context (no cookies) at a laptop's size; closed before ``site`` drops the data."""
    context = chromium.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(10_000)
    yield context
    context.close()


# The catalog (fixture ``catalog``)

# Acme's "Laptop": the justification is asked (and required) only for a developer laptop (an if/then of
# the JSON Schema; `x-order` keeps the fields in this order, jsonb does not keep the keys' order).
LAPTOP_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "model": {"type": "string", "title": "Model", "enum": ["standard", "developer"], "x-order": 1},
        "reason": {"type": "string", "title": "Reason", "minLength": 3, "x-order": 2},
        "justification": {"type": "string", "title": "Why a developer laptop", "x-order": 3},
    },
    "required": ["model", "reason"],
    "if": {"properties": {"model": {"const": "developer"}}, "required": ["model"]},
    "then": {"required": ["justification"]},
    "additionalProperties": False,
}


@dataclass
class Catalog:
    """The catalog data of ``catalog``: Acme's conditional laptop and its approver; Globex's item, its two
    requests by Bob and their approvals (pending, for Globex's tenant role ``approver``)."""

    laptop_id: uuid.UUID  # Acme's item; one approval step: Morgan, by person
    morgan: User  # approver of Acme (tenant role ``approver``), the laptop's approver
    globex_item_id: uuid.UUID
    globex_requests: list[str]  # request numbers, in creation order
    globex_approvals: list[uuid.UUID]  # one pending approval per Globex request, same order


@pytest.fixture
def catalog(site: Site) -> Catalog:
    """Committed catalog data on top of ``site`` (through the requests services): in Acme, a category
    "Hardware" with the item "Laptop" (``LAPTOP_SCHEMA``, approved by Morgan, an Acme user with the tenant
    role ``approver``); in Globex, the item "Globex VPN token" approved by Globex's tenant approvers and
    two requests Bob ordered, each waiting for that approval. Dropped with the tenants' schemas."""
    acme, globex = site.tenants["acme"], site.tenants["globex"]
    morgan = make_user("morgan@acme.example")
    tenant_membership_set(user=morgan, tenant=acme, role="approver")
    with tenant_context(acme):
        approver = actor_in(acme, morgan, role="approver").person
        tech = actor_in(acme, site.users["tech"])
        laptop = catalog_item_create(
            actor=tech,
            name="Laptop",
            short_description="A laptop for work, standard or developer.",
            category=catalog_category_create(actor=tech, name="Hardware", order=10),
            form_schema=LAPTOP_SCHEMA,
            expected_delivery_hours=48,
            approval_required=True,
            approval_steps=[StepSpec(order=1, approver_person=approver)],
        )
    with tenant_context(globex):
        tech = actor_in(globex, site.users["tech"])
        bob = actor_in(globex, site.users["bob"], role="end_user")
        token = catalog_item_create(
            actor=tech,
            name="Globex VPN token",
            short_description="Globex: a hardware token for the VPN.",
            category=catalog_category_create(actor=tech, name="Globex access", order=10),
            form_schema={"type": "object", "properties": {"site": {"type": "string", "title": "Site"}}},
            approval_required=True,
            approval_steps=[StepSpec(order=1, approver_role=ApproverRole.APPROVER)],
        )
        ordered = [
            request_submit(
                actor=Actor(user_id=bob.user_id, person=bob.person, role="end_user", source="portal"),
                items=[{"catalog_item": token, "variables": {"site": site_name}, "quantity": 1}],
            )
            for site_name in ("Globex HQ", "Globex lab")
        ]
        approvals = [request.approvals.get() for request in ordered]
    return Catalog(
        laptop_id=laptop.pk,
        morgan=morgan,
        globex_item_id=token.pk,
        globex_requests=[request.number for request in ordered],
        globex_approvals=[approval.pk for approval in approvals],
    )


__all__ = ["PASSWORD", "Catalog", "Site"]
