"""The actor: who is acting in tenant code. Built once per request (or task) and passed to every
service and selector (../shared/ARCHITECTURE.md, "Words")."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from modules.people.models import Person

PROVIDER_ROLES = frozenset({"owner", "admin", "technician"})
ADMIN_ROLES = frozenset({"owner", "admin", "client_admin", "system"})


@dataclass(frozen=True)
class Actor:
    """``role`` is the provider role (owner, admin, technician), the tenant role (client_admin,
    approver, cab_member, end_user) or ``system``. ``source`` says which entrance acted: console, api,
    portal, import or system."""

    user_id: int | None
    person: Person | None
    role: str
    source: str = "console"

    @property
    def is_technician(self) -> bool:
        """Provider staff (and the system) work every record of the tenant they entered."""
        return self.role in PROVIDER_ROLES or self.role == "system"

    @property
    def is_admin(self) -> bool:
        return self.role in ADMIN_ROLES

    @property
    def sees_organisation(self) -> bool:
        """Whether the actor sees every incident and request of their organisation (this tenant), not
        only their own: the tenant's client admins. No finer right exists yet (issue 5 names one as
        "people with that right"); technicians see everything anyway."""
        return self.role == "client_admin"

    @property
    def person_id(self) -> uuid.UUID | None:
        return self.person.pk if self.person is not None else None

    @classmethod
    def system(cls, *, source: str = "system", person: Person | None = None) -> Actor:
        return cls(user_id=None, person=person, role="system", source=source)
