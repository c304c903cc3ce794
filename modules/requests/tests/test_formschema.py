"""Order forms as JSON Schema: every field kind, required and conditional fields, person and CI ids
checked against this tenant's directory and CMDB, and the schema itself checked when an item is saved.
"""

from __future__ import annotations

import copy
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from django_tenants.utils import tenant_context

from conftest import actor_in
from controlplane.accounts.models import User
from controlplane.problems import InvalidInput
from modules.people.models import Person
from modules.records.actor import Actor
from modules.records.models import ActivityEntry
from modules.requests.formschema import variables_errors
from modules.requests.models import CatalogItem
from modules.requests.services import catalog_item_create, catalog_item_update
from tenants.models import Tenant

from .factories import LAPTOP_SCHEMA, category, ci, end_user, item, person


@pytest.fixture
def tech(tenant_a: Tenant, tech_a: User) -> Iterator[Actor]:
    with tenant_context(tenant_a):
        yield actor_in(tenant_a, tech_a)


def valid(**overrides: Any) -> dict[str, Any]:
    answers: dict[str, Any] = {"reason": "old one broke", "model": "standard"}
    answers.update(overrides)
    return answers


def errors(actor: Actor, answers: Any) -> list[dict[str, str]]:
    return variables_errors(actor=actor, schema=LAPTOP_SCHEMA, variables=answers)


def test_valid_answers_of_every_field_kind(tech: Actor) -> None:
    owner = person("Dana")
    laptop = ci("DANA-LT", owner=owner)
    answers = valid(
        ram_gb=16,
        needed_by="2026-02-28",
        deliver_to=str(owner.pk),
        replaces=str(laptop.pk),
        monitor_count=2,
        monitor_size="27in",
    )
    assert errors(tech, answers) == []


def test_each_field_kind_reports_its_own_field(tech: Actor) -> None:
    bad = {
        "reason": 5,
        "model": "gaming",
        "ram_gb": "lots",
        "needed_by": "2026-02-30",
        "deliver_to": str(uuid.uuid4()),
        "replaces": str(uuid.uuid4()),
    }
    assert errors(tech, bad) == [
        {"field": "variables.reason", "message": "5 is not of type 'string'"},
        {"field": "variables.model", "message": "one of standard, developer"},
        {"field": "variables.ram_gb", "message": "'lots' is not of type 'integer'"},
        {"field": "variables.needed_by", "message": "not a valid date (YYYY-MM-DD)"},
        {"field": "variables.deliver_to", "message": "no such person in this tenant"},
        {"field": "variables.replaces", "message": "no such configuration item"},
    ]


def test_number_bounds_and_text_length(tech: Actor) -> None:
    assert errors(tech, valid(ram_gb=4, reason="no")) == [
        {"field": "variables.reason", "message": "'no' is too short"},
        {"field": "variables.ram_gb", "message": "4 is less than the minimum of 8"},
    ]


def test_required_fields_are_named(tech: Actor) -> None:
    assert errors(tech, {}) == [
        {"field": "variables.reason", "message": "required"},
        {"field": "variables.model", "message": "required"},
    ]


def test_conditional_field_is_required_only_when_its_condition_holds(tech: Actor) -> None:
    assert errors(tech, valid(model="standard")) == []
    assert errors(tech, valid(model="developer")) == [
        {"field": "variables.justification", "message": "required"}
    ]
    assert errors(tech, valid(model="developer", justification="builds containers")) == []


def test_dependent_required_field(tech: Actor) -> None:
    assert errors(tech, valid(monitor_count=2)) == [
        {"field": "variables.monitor_size", "message": "required when monitor_count is given"}
    ]
    assert errors(tech, valid(monitor_size="24in")) == []


def test_unknown_field_and_non_object_answers(tech: Actor) -> None:
    assert errors(tech, valid(colour="red")) == [{"field": "variables.colour", "message": "unknown field"}]
    assert errors(tech, ["reason"]) == [{"field": "variables", "message": "must be an object"}]


def test_person_of_another_tenant_is_not_a_person_here(
    tenant_a: Tenant, tenant_b: Tenant, tech_a: User
) -> None:
    with tenant_context(tenant_b):
        stranger = person("Stranger")
    with tenant_context(tenant_a):
        actor = actor_in(tenant_a, tech_a)
        assert errors(actor, valid(deliver_to=str(stranger.pk))) == [
            {"field": "variables.deliver_to", "message": "no such person in this tenant"}
        ]
        inactive = Person.objects.create(display_name="Gone", is_active=False)
        assert errors(actor, valid(deliver_to=str(inactive.pk)))[0]["field"] == "variables.deliver_to"
        assert errors(actor, valid(deliver_to="not-a-uuid"))[0]["field"] == "variables.deliver_to"


def test_ci_must_be_visible_to_the_orderer(tech: Actor) -> None:
    alice, bob = person("Alice"), person("Bob")
    alices = ci("ALICE-LT", owner=alice, number="CI0000001")
    bobs = ci("BOB-LT", owner=bob, number="CI0000002")
    assert errors(end_user(alice), valid(replaces=str(alices.pk))) == []
    assert errors(end_user(alice), valid(replaces=str(bobs.pk))) == [
        {"field": "variables.replaces", "message": "no such configuration item"}
    ]
    assert errors(tech, valid(replaces=str(bobs.pk))) == []


@pytest.mark.parametrize(
    ("schema", "message"),
    [
        ({"type": "object", "properties": {"x": {"type": "strang"}}}, "at properties/x/type"),
        ({"type": "object", "required": "x"}, "'x' is not of type 'array'"),
        ({"type": "string"}, 'the top level must be {"type": "object"}'),
        ([], "must be an object"),
        # a reference could point nowhere and fail only when someone orders
        ({"type": "object", "properties": {"x": {"$ref": "#/$defs/nope"}}}, "instead of using $ref"),
    ],
)
def test_bad_schema_is_refused_when_an_item_is_saved(tech: Actor, schema: Any, message: str) -> None:
    hardware = category(tech)
    entries = ActivityEntry.objects.count()
    with pytest.raises(InvalidInput) as refused:
        catalog_item_create(actor=tech, name="Laptop", category=hardware, form_schema=schema)
    assert [e["field"] for e in refused.value.extra["errors"]] == ["form_schema"]
    assert message in refused.value.extra["errors"][0]["message"]
    assert CatalogItem.objects.count() == 0
    assert ActivityEntry.objects.count() == entries


def test_bad_schema_on_update_leaves_the_item_unchanged(tech: Actor) -> None:
    laptop = item(tech, schema=LAPTOP_SCHEMA)
    with pytest.raises(InvalidInput) as refused:
        catalog_item_update(
            actor=tech, item=laptop, form_schema={"type": "object", "properties": {"x": {"minimum": "one"}}}
        )
    assert refused.value.extra["errors"][0]["field"] == "form_schema"
    laptop.refresh_from_db()
    assert laptop.form_schema == LAPTOP_SCHEMA
    changed = copy.deepcopy(LAPTOP_SCHEMA)
    changed["required"] = ["reason"]
    catalog_item_update(actor=tech, item=laptop, form_schema=changed)
    laptop.refresh_from_db()
    assert laptop.form_schema["required"] == ["reason"]
