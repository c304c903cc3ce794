"""Benchmark: CMDB impact analysis at depth 6 on 100,000 CIs and 300,000 relationships.

The CMDB is layered the way an MSP client's estate is (BENCH_CIS scales it, default 100,000):
1 % network devices, 9 % physical hosts, 50 % servers and VMs, 25 % software and databases, 10 %
applications, 5 % business services. Relationships: ten core switches in a ring (a cycle), every other
switch uplinked to two of them; each host connected to two switches; each server or VM hosted on a
host; each piece of software running on two servers; each application depending on five pieces of
software, running on three servers and using one other application (random: more cycles); each
business service depending on four applications; then software depending on software within its stack
(one of the next 50 packages) up to 3 relationships per CI (300,000 for 100,000 CIs).

Start CIs are drawn uniformly from all CIs, and separately from each layer (network devices are the
worst case: a failure reaches the most CIs). The production selector ``ci_impact_get`` runs as a
technician. Target (issue 3): p95 <= 50 ms for depth 6. Written to .data/bench/impact.json.
"""

from __future__ import annotations

import os
import random
import time

import pytest
from django.db import connection
from django_tenants.utils import tenant_context

from controlplane.providers.models import Provider
from modules.cmdb.models import SOURCE_IMPACTS_TARGET
from modules.cmdb.selectors import ci_impact_get
from modules.records.actor import Actor
from tenants.services import tenant_provision

from .measure import summary, write_result

CIS = int(os.environ.get("BENCH_CIS", "100000"))
QUERIES = int(os.environ.get("BENCH_IMPACT_QUERIES", "200"))
# (class, share of all CIs)
LAYERS = [
    ("network_device", 0.01),
    ("hardware", 0.09),
    ("server", 0.50),
    ("software", 0.25),
    ("application", 0.10),
    ("business_service", 0.05),
]


def populate(total: int) -> dict[str, list[str]]:
    """Create the layered CMDB in the current tenant schema by SQL; returns CI ids per layer."""
    ids: dict[str, list[str]] = {}
    offset = 0
    with connection.cursor() as cursor:
        for ci_class, share in LAYERS:
            count = max(2, int(total * share))
            cursor.execute(
                "INSERT INTO cmdb_configurationitem (id, created_at, updated_at, number, name, ci_class,"
                " lifecycle, description, attributes)"
                " SELECT gen_random_uuid(), now(), now(), 'CI' || lpad((%s + n)::text, 8, '0'),"
                " %s || '-' || n, %s, 'operational', '', '{}' FROM generate_series(1, %s) AS n RETURNING id",
                [offset, ci_class, ci_class, count],
            )
            ids[ci_class] = [str(row[0]) for row in cursor.fetchall()]
            offset += count
    rng = random.Random(7)
    edges: set[tuple[str, str, str]] = set()

    def link(sources: list[str], targets: list[str], rel_type: str, per_source: int) -> None:
        for source in sources:
            for target in rng.sample(targets, min(per_source, len(targets))):
                if source != target:
                    edges.add((source, target, rel_type))

    network = ids["network_device"]
    core, rest = network[:10], network[10:]
    for switch in rest:  # access and distribution switches, each uplinked to two core switches
        for uplink in rng.sample(core, 2):
            edges.add((switch, uplink, "connects_to"))
    edges.add((core[0], core[1], "connects_to"))  # a core ring: cycles
    edges.add((core[1], core[0], "connects_to"))
    link(ids["hardware"], rest, "connects_to", 2)
    link(ids["server"], ids["hardware"], "hosted_on", 1)
    link(ids["software"], ids["server"], "runs_on", 2)
    link(ids["application"], ids["software"], "depends_on", 5)
    link(ids["application"], ids["server"], "runs_on", 3)
    link(ids["application"], ids["application"], "uses", 1)  # random: cycles among applications
    link(ids["business_service"], ids["application"], "depends_on", 4)
    software = ids["software"]
    target_edges = 3 * total
    while len(edges) < target_edges:
        # Software stacks: a library depends on one of the next 50 packages of its stack.
        index = rng.randrange(len(software) - 1)
        other = min(len(software) - 1, index + rng.randint(1, 50))
        edges.add((software[index], software[other], "depends_on"))
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO cmdb_cirelationship (source_id, target_id, rel_type, impact_from_id, impact_to_id)"
            " SELECT s, t, r, CASE WHEN r = ANY(%s) THEN s ELSE t END, CASE WHEN r = ANY(%s) THEN t ELSE s END"
            " FROM unnest(%s::uuid[], %s::uuid[], %s::text[]) AS e(s, t, r)",
            [
                list(SOURCE_IMPACTS_TARGET),
                list(SOURCE_IMPACTS_TARGET),
                [e[0] for e in edges],
                [e[1] for e in edges],
                [e[2] for e in edges],
            ],
        )
        cursor.execute("VACUUM ANALYZE cmdb_configurationitem")
        cursor.execute("VACUUM ANALYZE cmdb_cirelationship")
    return ids


@pytest.mark.django_db(transaction=True)
def test_impact_benchmark() -> None:
    provider = Provider.objects.create(name="Bench MSP", slug="bench-impact")
    tenant = tenant_provision(provider=provider, name="Impact bench", slug="bench-impact")
    rng = random.Random(11)
    with tenant_context(tenant):
        ids = populate(CIS)
        technician = Actor(user_id=1, person=None, role="technician")
        every = [ci for layer in ids.values() for ci in layer]
        with connection.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM cmdb_configurationitem")
            cis = cursor.fetchone()[0]
            cursor.execute("SELECT count(*) FROM cmdb_cirelationship")
            relationships = cursor.fetchone()[0]
        for ci in rng.sample(every, 20):  # warm-up, untimed
            ci_impact_get(actor=technician, ci_id=ci, depth=6)
        samples: dict[str, list[float]] = {}
        reached: dict[str, list[int]] = {}

        def measure(name: str, ci: str) -> None:
            start = time.perf_counter()
            impacted = ci_impact_get(actor=technician, ci_id=ci, depth=6)
            samples.setdefault(name, []).append((time.perf_counter() - start) * 1000.0)
            reached.setdefault(name, []).append(len(impacted))

        for ci in rng.sample(every, QUERIES):
            measure("all", ci)
        for ci_class, layer in ids.items():
            for ci in rng.sample(layer, min(50, len(layer))):
                measure(ci_class, ci)
    result: dict[str, object] = {
        name: {**summary(values), "max_impacted": max(reached[name])} for name, values in samples.items()
    }
    result["cis"], result["relationships"], result["depth"] = cis, relationships, 6
    path = write_result("impact", result)
    print(
        f"\nimpact depth 6 on {cis:,} CIs / {relationships:,} relationships (ms)   n     p50     p95    mean  max CIs"
    )
    for name, values in samples.items():
        r = summary(values)
        print(
            f"  start: {name:28} {r['n']:5} {r['p50_ms']:7} {r['p95_ms']:7} {r['mean_ms']:7} {max(reached[name]):7}"
        )
    print(f"  target: p95 <= 50 ms; PostgreSQL {result['postgresql']}; {path}")
    with connection.cursor() as cursor:
        cursor.execute(f'DROP SCHEMA "{tenant.schema_name}" CASCADE')
