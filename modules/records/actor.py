"""The actor: who is acting in tenant code. Built once per request (or task) and passed to every
service and selector (../shared/ARCHITECTURE.md, "Words")."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING

from controlplane.permissions import Permission, role_may

if TYPE_CHECKING:
    from modules.people.models import Person


@dataclass(frozen=True)
class Actor:
    """``role`` is the provider role (owner, admin, technician), the tenant role (client_admin,
    approver, cab_member, end_user) or ``system``. ``source`` says which entrance acted: console, api,
    portal, import or system."""

    user_id: int | None
    person: Person | None
    role: str
    source: str = "console"

    def may(self, permission: Permission) -> bool:
        """Whether this actor's role holds ``permission`` in the permission matrix
        (controlplane.permissions.MATRIX); record-level rules are the caller's to add."""
        return role_may(self.role, permission)

    @property
    def can(self) -> RolePermissions:
        """For templates, which cannot pass arguments: ``{% if request.actor.can.CONFIG_READ %}``."""
        return RolePermissions(self.role)

    @property
    def is_technician(self) -> bool:
        """Works every record of the tenant it entered (``record.work``: provider staff and the system)."""
        return self.may(Permission.RECORD_WORK)

    @property
    def person_id(self) -> uuid.UUID | None:
        return self.person.pk if self.person is not None else None

    @classmethod
    def system(cls, *, source: str = "system", person: Person | None = None) -> Actor:
        return cls(user_id=None, person=person, role="system", source=source)


@dataclass(frozen=True)
class RolePermissions:
    """``can.<PERMISSION NAME>`` (``can.CONFIG_READ``): whether ``role`` holds it (controlplane.permissions)."""

    role: str

    def __getattr__(self, name: str) -> bool:
        try:
            return role_may(self.role, Permission[name])
        except KeyError:
            raise AttributeError(name) from None
