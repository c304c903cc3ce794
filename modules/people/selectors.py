"""Reads of the tenant directory."""

from __future__ import annotations

from django.db.models import QuerySet

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
