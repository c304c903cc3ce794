"""Writes to the tenant directory."""

from __future__ import annotations

from django.db import IntegrityError, transaction

from .models import Person


def person_for_user(*, user_id: int, display_name: str, email: str) -> Person:
    """The person linked to control-plane user ``user_id``, created on first use in this tenant.

    Technicians are mirrored into each tenant they enter this way; the name is kept current.
    """
    person = Person.objects.filter(user_id=user_id).first()
    if person is None:
        try:
            with transaction.atomic():
                person = Person.objects.create(user_id=user_id, display_name=display_name, email=email)
        except IntegrityError:  # created concurrently by another request
            person = Person.objects.get(user_id=user_id)
    elif person.display_name != display_name or person.email != email:
        person.display_name, person.email = display_name, email
        person.save(update_fields=["display_name", "email", "updated_at"])
    return person
