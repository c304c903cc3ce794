"""Helpers for the CMDB tests: users with tenant roles and CIs made through the services."""

from __future__ import annotations

from typing import Any

from conftest import actor_in, make_user
from controlplane.accounts.models import User
from controlplane.accounts.services import tenant_membership_set
from modules.cmdb.models import CIRelationship, ConfigurationItem
from modules.cmdb.services import ci_create, relationship_create
from modules.records.actor import Actor
from tenants.models import Tenant


def tenant_user(tenant: Tenant, email: str, role: str) -> User:
    """A user with a tenant role (client_admin, approver, cab_member, end_user) in ``tenant``."""
    user = make_user(email)
    tenant_membership_set(user=user, tenant=tenant, role=role)
    return user


def ci(actor: Actor, name: str, ci_class: str = "server", **fields: Any) -> ConfigurationItem:
    """Create a CI through the service; call inside the tenant's context."""
    return ci_create(actor=actor, name=name, ci_class=ci_class, **fields)


def rel(actor: Actor, source: ConfigurationItem, rel_type: str, target: ConfigurationItem) -> CIRelationship:
    """``source`` <rel_type> ``target`` through the service."""
    return relationship_create(actor=actor, source_id=source.pk, target_id=target.pk, rel_type=rel_type)


__all__ = ["actor_in", "ci", "rel", "tenant_user"]
