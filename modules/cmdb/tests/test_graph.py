"""The CI page's relationship and impact graph: well-formed SVG, one link per node, layers by depth,
edges labelled, business services highlighted, a bounded size that says what was left out."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Callable

from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django_tenants.utils import tenant_context

from controlplane.accounts.models import User
from modules.cmdb.graph import MAX_NODES
from tenants.models import Tenant

from .factories import actor_in, ci, rel

SVG = "{http://www.w3.org/2000/svg}"


def graph_of(html: str) -> ET.Element:
    """The graph's <svg> element, parsed as XML (raises if it is not well-formed)."""
    match = re.search(r'<figure class="ci-graph".*?(<svg.*?</svg>)', html, re.S)
    assert match, "no graph on the page"
    return ET.fromstring(match.group(1))  # noqa: S314 - our own markup


def nodes_of(svg: ET.Element) -> dict[str, ET.Element]:
    """href -> the node's <a> element."""
    return {a.get("href", ""): a for a in svg.iter(f"{SVG}a")}


def x_of(node: ET.Element) -> float:
    rect = node.find(f"{SVG}rect")
    assert rect is not None
    return float(rect.get("x", "0"))


def test_graph_links_every_node_layers_by_depth_and_labels_edges(
    client_for: Callable[..., Client], tech_a: User, tenant_a: Tenant
) -> None:
    with tenant_context(tenant_a):
        tech = actor_in(tenant_a, tech_a)
        server = ci(tech, "srv01", "server")  # CI0000001
        app = ci(tech, "CRM <app>", "application")  # CI0000002, a name that needs escaping
        service = ci(tech, "Sales", "business_service")  # CI0000003
        db = ci(tech, "crm-db", "database", attributes={"engine": "postgresql"})  # CI0000004
        rel(tech, app, "runs_on", server)
        rel(tech, app, "depends_on", db)
        rel(tech, service, "depends_on", app)
    page = client_for(tech_a).get("/t/acme/cmdb/CI0000002/")
    assert page.status_code == 200
    svg = graph_of(page.content.decode())
    assert svg.get("role") == "group"
    assert svg.find(f"{SVG}title") is not None and svg.find(f"{SVG}desc") is not None
    nodes = nodes_of(svg)
    assert set(nodes) == {f"/t/acme/cmdb/CI000000{n}/" for n in (1, 2, 3, 4)}
    # Left of the app: what it relies on (server, database); right: the business service it reaches.
    xs = {href[-2]: x_of(a) for href, a in nodes.items()}
    assert xs["1"] == xs["4"] < xs["2"] < xs["3"]
    assert "this CI" in nodes["/t/acme/cmdb/CI0000002/"].get("aria-label", "")
    assert "CRM <app>" in nodes["/t/acme/cmdb/CI0000002/"].get("aria-label", "")
    service_node = nodes["/t/acme/cmdb/CI0000003/"]
    assert "business-service" in service_node.get("class", "")
    assert "business service" in service_node.get("aria-label", "")
    assert "business-service" not in nodes["/t/acme/cmdb/CI0000001/"].get("class", "")
    labels = sorted(t.text or "" for t in svg.findall(f"{SVG}text"))
    assert {"runs", "used by"} <= set(labels)
    assert len(svg.findall(f"{SVG}path")) == 3
    assert "not drawn" not in page.content.decode()
    # The text tables remain for screen readers.
    assert "CI0000002 used by CI0000003" in page.content.decode()


def test_graph_is_bounded_and_says_how_many_were_left_out(
    client_for: Callable[..., Client], tech_a: User, tenant_a: Tenant
) -> None:
    with tenant_context(tenant_a):
        tech = actor_in(tenant_a, tech_a)
        hub = ci(tech, "core-switch", "network_device")
        for i in range(MAX_NODES + 4):
            rel(tech, ci(tech, f"host{i:02d}", "server"), "connects_to", hub)
    page = client_for(tech_a).get("/t/acme/cmdb/CI0000001/")
    svg = graph_of(page.content.decode())
    assert len(nodes_of(svg)) == MAX_NODES
    assert "5 more CIs not drawn" in page.content.decode()


def test_detail_query_count_does_not_grow_with_the_graph(
    client_for: Callable[..., Client], tech_a: User, tenant_a: Tenant
) -> None:
    with tenant_context(tenant_a):
        tech = actor_in(tenant_a, tech_a)
        small = ci(tech, "small", "server")
        rel(tech, ci(tech, "one", "application"), "runs_on", small)
        big = ci(tech, "big", "server")
        for i in range(30):
            rel(tech, ci(tech, f"app{i:02d}", "application"), "runs_on", big)
    client = client_for(tech_a)
    counts = []
    for number in (small.number, big.number):
        client.get(f"/t/acme/cmdb/{number}/")
        with CaptureQueriesContext(connection) as queries:
            assert client.get(f"/t/acme/cmdb/{number}/").status_code == 200
        # Schema switches (SET search_path) depend on the connection's previous request, not the page.
        counts.append(sum(not q["sql"].startswith("SET search_path") for q in queries.captured_queries))
    assert counts[0] == counts[1], counts


def test_end_users_get_no_graph(
    client_for: Callable[..., Client], tech_a: User, end_user_a: User, tenant_a: Tenant
) -> None:
    with tenant_context(tenant_a):
        tech = actor_in(tenant_a, tech_a)
        rel(tech, ci(tech, "CRM", "application"), "runs_on", ci(tech, "srv", "server"))
    page = client_for(end_user_a).get("/t/acme/cmdb/CI0000001/")
    assert 'class="ci-graph"' not in page.content.decode()


def test_a_ci_without_relationships_draws_no_graph(
    client_for: Callable[..., Client], tech_a: User, tenant_a: Tenant
) -> None:
    with tenant_context(tenant_a):
        ci(actor_in(tenant_a, tech_a), "lonely", "server")
    text = client_for(tech_a).get("/t/acme/cmdb/CI0000001/").content.decode()
    assert "No relationships to draw." in text and 'class="ci-graph"' not in text
