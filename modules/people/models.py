"""The tenant's directory: persons (anyone who appears in its records) and assignment groups.

Tenant plane. A person may be linked to a control-plane user by ``user_id`` (no database foreign key
into public). ``external_ref`` keys people and groups brought in by an import (``servicenow:Caller 12``).
"""

from __future__ import annotations

from django.db import models

from modules.records.models import Record


class Person(Record):
    display_name = models.CharField(max_length=200)
    email = models.EmailField(blank=True)
    user_id = models.BigIntegerField(null=True, unique=True)
    external_ref = models.CharField(max_length=200, null=True, unique=True)
    is_active = models.BooleanField(default=True)
    # The person's line manager: the "requester's manager" approver of service requests (ServiceNow's
    # sys_user.manager). Cleared, not cascaded, when the manager leaves the directory.
    manager = models.ForeignKey(
        "self", on_delete=models.SET_NULL, null=True, blank=True, related_name="reports"
    )

    class Meta:
        ordering = ["display_name"]
        # Lists sorted by caller or assignee name walk persons in name order and join their records.
        indexes = [models.Index(fields=["display_name", "id"], name="person_name")]

    def __str__(self) -> str:
        return self.display_name


class Group(Record):
    """An assignment group: a provider team mirrored into this tenant, or one of the tenant's own."""

    name = models.CharField(max_length=200, unique=True)
    external_ref = models.CharField(max_length=200, null=True, unique=True)
    members = models.ManyToManyField(Person, through="GroupMembership", related_name="groups")

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class GroupMembership(models.Model):
    group = models.ForeignKey(Group, on_delete=models.CASCADE)
    person = models.ForeignKey(Person, on_delete=models.CASCADE)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["group", "person"], name="uniq_group_member")]
