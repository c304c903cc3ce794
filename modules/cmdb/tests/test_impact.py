"""Impact analysis (``ci_impact_get``): breadth-first over the direction a failure travels, cycle-safe,
depth-limited, with exact explaining paths."""

from __future__ import annotations

import pytest
from django_tenants.utils import tenant_context

from controlplane.accounts.models import User
from controlplane.problems import NotFound
from modules.cmdb.models import ConfigurationItem
from modules.cmdb.selectors import ImpactedCI, ci_impact_get
from modules.records.actor import Actor
from tenants.models import Tenant

from .factories import actor_in, ci, rel, tenant_user


def rows(impacted: list[ImpactedCI]) -> list[tuple[str, int, list[str], list[str]]]:
    return [(i.name, i.depth, i.path_numbers, i.via) for i in impacted]


def test_a_chain_reaches_the_business_service_with_its_path(tech_a: User, tenant_a: Tenant) -> None:
    with tenant_context(tenant_a):
        tech = actor_in(tenant_a, tech_a)
        host = ci(tech, "esx1")  # CI0000001
        vm = ci(tech, "vm-crm", "virtual_machine")  # CI0000002
        app = ci(tech, "CRM", "application")  # CI0000003
        service = ci(tech, "Sales", "business_service")  # CI0000004
        rel(tech, vm, "hosted_on", host)
        rel(tech, app, "runs_on", vm)
        rel(tech, service, "depends_on", app)
        impacted = ci_impact_get(actor=tech, ci_id=host.pk)
        assert rows(impacted) == [
            ("vm-crm", 1, ["CI0000001", "CI0000002"], ["hosted_on"]),
            ("CRM", 2, ["CI0000001", "CI0000002", "CI0000003"], ["hosted_on", "runs_on"]),
            (
                "Sales",
                3,
                ["CI0000001", "CI0000002", "CI0000003", "CI0000004"],
                ["hosted_on", "runs_on", "depends_on"],
            ),
        ]
        assert [i.path for i in impacted][-1] == [host.pk, vm.pk, app.pk, service.pk]
        assert [i.is_business_service for i in impacted] == [False, False, True]
        assert (
            impacted[-1].explanation
            == "CI0000001 hosts CI0000002, CI0000002 runs CI0000003, CI0000003 used by CI0000004"
        )
        assert ci_impact_get(actor=tech, ci_id=service.pk) == []  # nothing depends on the service


def test_a_diamond_lists_each_ci_once_by_its_shortest_path(tech_a: User, tenant_a: Tenant) -> None:
    with tenant_context(tenant_a):
        tech = actor_in(tenant_a, tech_a)
        db = ci(tech, "db", "database", attributes={"engine": "postgresql"})  # CI0000001
        left = ci(tech, "left", "application")  # CI0000002
        right = ci(tech, "right", "application")  # CI0000003
        service = ci(tech, "Billing", "business_service")  # CI0000004
        rel(tech, right, "depends_on", db)
        rel(tech, left, "uses", db)
        rel(tech, service, "depends_on", right)
        rel(tech, service, "depends_on", left)
        impacted = ci_impact_get(actor=tech, ci_id=db.pk)
        first = min(left.pk, right.pk)  # of two shortest paths, the one via the smaller (earlier) id
        via = "CI0000002" if first == left.pk else "CI0000003"
        assert sorted(rows(impacted)[:2]) == [
            ("left", 1, ["CI0000001", "CI0000002"], ["uses"]),
            ("right", 1, ["CI0000001", "CI0000003"], ["depends_on"]),
        ]
        assert rows(impacted)[2] == (
            "Billing",
            2,
            ["CI0000001", via, "CI0000004"],
            [
                "uses" if via == "CI0000002" else "depends_on",
                "depends_on",
            ],
        )
        assert len(impacted) == 3


def test_a_cycle_ends_the_walk(tech_a: User, tenant_a: Tenant) -> None:
    with tenant_context(tenant_a):
        tech = actor_in(tenant_a, tech_a)
        a, b, c = ci(tech, "a", "application"), ci(tech, "b", "application"), ci(tech, "c", "application")
        rel(tech, a, "depends_on", b)  # b's failure reaches a
        rel(tech, b, "depends_on", c)  # c's failure reaches b
        rel(tech, c, "depends_on", a)  # a's failure reaches c
        assert rows(ci_impact_get(actor=tech, ci_id=a.pk, depth=10)) == [
            ("c", 1, ["CI0000001", "CI0000003"], ["depends_on"]),
            ("b", 2, ["CI0000001", "CI0000003", "CI0000002"], ["depends_on", "depends_on"]),
        ]


def _chain(tech: Actor, length: int) -> list[ConfigurationItem]:
    items = [ci(tech, f"n{i}", "application") for i in range(length)]
    for upper, lower in zip(items[1:], items, strict=False):
        rel(tech, upper, "depends_on", lower)
    return items


def test_depth_limits_the_walk(tech_a: User, tenant_a: Tenant) -> None:
    with tenant_context(tenant_a):
        tech = actor_in(tenant_a, tech_a)
        items = _chain(tech, 13)
        assert [i.name for i in ci_impact_get(actor=tech, ci_id=items[0].pk, depth=2)] == ["n1", "n2"]
        assert [i.depth for i in ci_impact_get(actor=tech, ci_id=items[0].pk)] == [1, 2, 3, 4, 5, 6]
        assert len(ci_impact_get(actor=tech, ci_id=items[0].pk, depth=0)) == 1  # at least one hop
        assert len(ci_impact_get(actor=tech, ci_id=items[0].pk, depth=99)) == 10  # at most MAX_IMPACT_DEPTH


@pytest.mark.parametrize(
    ("rel_type", "source_fails_reaches_target", "reading"),
    [
        ("depends_on", False, "used by"),
        ("uses", False, "used by"),
        ("runs_on", False, "runs"),
        ("hosted_on", False, "hosts"),
        ("connects_to", False, "connected by"),
        ("contains", True, "contains"),
        ("supports", True, "supports"),
    ],
)
def test_direction_per_relationship_type(
    tech_a: User, tenant_a: Tenant, rel_type: str, source_fails_reaches_target: bool, reading: str
) -> None:
    with tenant_context(tenant_a):
        tech = actor_in(tenant_a, tech_a)
        source, target = ci(tech, "source"), ci(tech, "target")  # CI0000001, CI0000002
        rel(tech, source, rel_type, target)
        from_source = ci_impact_get(actor=tech, ci_id=source.pk)
        from_target = ci_impact_get(actor=tech, ci_id=target.pk)
        failing, reached = (
            (from_source, from_target) if source_fails_reaches_target else (from_target, from_source)
        )
        assert reached == []
        assert [(i.name, i.via) for i in failing] == [
            ("target" if source_fails_reaches_target else "source", [rel_type])
        ]
        start, end = ("CI0000001", "CI0000002") if source_fails_reaches_target else ("CI0000002", "CI0000001")
        assert failing[0].explanation == f"{start} {reading} {end}"


def test_only_cmdb_managers_get_the_impact(tech_a: User, end_user_a: User, tenant_a: Tenant) -> None:
    admin = tenant_user(tenant_a, "it@acme.example", "client_admin")
    with tenant_context(tenant_a):
        tech = actor_in(tenant_a, tech_a)
        user = actor_in(tenant_a, end_user_a, "end_user")
        laptop = ci(tech, "laptop", "computer", owner=user.person)
        app = ci(tech, "app", "application")
        rel(tech, app, "depends_on", laptop)
        with pytest.raises(NotFound):
            ci_impact_get(actor=user, ci_id=laptop.pk)  # the owner sees the CI, not the dependency map
        assert [
            i.name for i in ci_impact_get(actor=actor_in(tenant_a, admin, "client_admin"), ci_id=laptop.pk)
        ] == ["app"]
