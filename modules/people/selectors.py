"""Reads of the tenant directory."""

from __future__ import annotations

import uuid

from django.core.exceptions import ValidationError
from django.db.models import QuerySet

from controlplane.problems import NotFound
from modules.records.actor import Actor

from .models import Group, Person


def person_list(*, actor: Actor, q: str = "") -> QuerySet[Person]:
    """Active persons, by name; technicians see everyone, others only themselves."""
    qs = Person.objects.filter(is_active=True)
    if not actor.is_technician:
        qs = qs.filter(pk=actor.person_id) if actor.person_id else qs.none()
    return qs.filter(display_name__icontains=q) if q else qs


def group_list(*, actor: Actor) -> QuerySet[Group]:
    """Assignment groups, by name (technicians only; end users get none)."""
    return Group.objects.all() if actor.is_technician else Group.objects.none()


def person_get(*, actor: Actor, person_id: uuid.UUID | str) -> Person:
    """One person of the directory (technicians: anyone; others: themselves). NotFound otherwise."""
    try:
        return person_list(actor=actor).select_related("manager").get(pk=person_id)
    except (Person.DoesNotExist, ValidationError, ValueError, TypeError) as exc:
        raise NotFound("no such person") from exc
