"""Builders for the service request tests. Call inside ``tenant_context``."""

from __future__ import annotations

from typing import Any

from modules.cmdb.models import ConfigurationItem
from modules.people.models import Group, GroupMembership, Person
from modules.records.actor import Actor
from modules.requests.models import CatalogCategory, CatalogItem
from modules.requests.services import StepSpec, catalog_category_create, catalog_item_create

LAPTOP_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "reason": {"type": "string", "minLength": 3},
        "model": {"type": "string", "enum": ["standard", "developer"]},
        "ram_gb": {"type": "integer", "minimum": 8, "maximum": 64},
        "needed_by": {"type": "string", "format": "date"},
        "deliver_to": {"type": "string", "format": "person"},
        "replaces": {"type": "string", "format": "ci"},
        "justification": {"type": "string"},
        "monitor_count": {"type": "integer"},
        "monitor_size": {"type": "string"},
    },
    "required": ["reason", "model"],
    "if": {"properties": {"model": {"const": "developer"}}, "required": ["model"]},
    "then": {"required": ["justification"]},
    "dependentRequired": {"monitor_count": ["monitor_size"]},
    "additionalProperties": False,
}


def person(name: str, *, manager: Person | None = None) -> Person:
    return Person.objects.create(display_name=name, email=f"{name.lower()}@acme.example", manager=manager)


def group(name: str, *members: Person) -> Group:
    created = Group.objects.create(name=name)
    for member in members:
        GroupMembership.objects.create(group=created, person=member)
    return created


def end_user(who: Person, role: str = "end_user") -> Actor:
    return Actor(user_id=None, person=who, role=role)


def ci(name: str, owner: Person | None = None, number: str = "CI0000001") -> ConfigurationItem:
    return ConfigurationItem.objects.create(number=number, name=name, ci_class="computer", owner=owner)


def category(actor: Actor, name: str = "Hardware") -> CatalogCategory:
    return catalog_category_create(actor=actor, name=name, order=10)


def item(
    actor: Actor,
    *,
    name: str = "Laptop",
    schema: dict[str, Any] | None = None,
    steps: list[StepSpec] | None = None,
    fulfilment_group: Group | None = None,
    hours: int = 48,
    in_category: CatalogCategory | None = None,
) -> CatalogItem:
    return catalog_item_create(
        actor=actor,
        name=name,
        category=in_category or CatalogCategory.objects.first() or category(actor),
        form_schema=schema if schema is not None else {"type": "object", "properties": {}},
        fulfilment_group=fulfilment_group,
        expected_delivery_hours=hours,
        approval_required=bool(steps),
        approval_steps=steps,
    )
