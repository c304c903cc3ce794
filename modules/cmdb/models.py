"""The CMDB: configuration items (CIs) and their typed, directed relationships. Tenant plane.

Classes, lifecycle states and relationship types follow ServiceNow's CMDB (cmdb_ci classes,
``install_status``, ``cmdb_rel_type`` such as "Depends on::Used by"), which MSP clients mostly come from.
"""

from __future__ import annotations

from typing import Any

from django.db import models

from modules.records.models import Record


class CIClass(models.TextChoices):
    HARDWARE = "hardware", "Hardware"
    COMPUTER = "computer", "Computer"
    SERVER = "server", "Server"
    VIRTUAL_MACHINE = "virtual_machine", "Virtual machine"
    NETWORK_DEVICE = "network_device", "Network device"
    SOFTWARE = "software", "Software"
    APPLICATION = "application", "Application"
    DATABASE = "database", "Database"
    BUSINESS_SERVICE = "business_service", "Business service"
    SITE = "site", "Site"
    # ServiceNow's base class (cmdb_ci): a CI known only by name, e.g. from an imported incident.
    GENERIC = "generic", "Configuration item"


class Lifecycle(models.TextChoices):
    PLANNED = "planned", "Planned"
    ORDERED = "ordered", "On order"
    IN_STOCK = "in_stock", "In stock"
    OPERATIONAL = "operational", "Operational"
    MAINTENANCE = "maintenance", "In maintenance"
    RETIRED = "retired", "Retired"


class RelType(models.TextChoices):
    """Read as "source <type> target": an app *runs on* a server, a service *depends on* an app."""

    HOSTED_ON = "hosted_on", "hosted on"
    DEPENDS_ON = "depends_on", "depends on"
    USES = "uses", "uses"
    RUNS_ON = "runs_on", "runs on"
    CONTAINS = "contains", "contains"
    CONNECTS_TO = "connects_to", "connects to"
    SUPPORTS = "supports", "supports"
    # Discovery (modules/cmdb/discovery.py): a software CI is *installed on* a computer.
    INSTALLED_ON = "installed_on", "installed on"


# The inverse reading of each type, "target <inverse> source": ServiceNow names its relationship types
# by both readings ("Depends on::Used by", "Runs on::Runs", "Hosted on::Hosts", "Contains::Contained by").
REL_INVERSE_LABELS: dict[str, str] = {
    RelType.HOSTED_ON: "hosts",
    RelType.DEPENDS_ON: "used by",
    RelType.USES: "used by",
    RelType.RUNS_ON: "runs",
    RelType.CONTAINS: "contained by",
    RelType.CONNECTS_TO: "connected by",
    RelType.SUPPORTS: "supported by",
    RelType.INSTALLED_ON: "installed software",
}


def rel_reading(rel_type: str, *, outgoing: bool) -> str:
    """How a relationship reads from one end: the source reads the type's label ("runs on"), the target
    its inverse ("runs")."""
    return str(RelType(rel_type).label) if outgoing else REL_INVERSE_LABELS[rel_type]


# Which way a failure travels along each type. For "A depends on B" a failure of B reaches A (the target
# impacts the source); for "A contains B" and "A supports B" a failure of A reaches B (the source impacts
# the target). ServiceNow's impact analysis reads its relationship types the same way. "Software installed
# on a computer" reads like "runs on": a failure of the computer (the target) reaches its software, so
# INSTALLED_ON is not listed here (the target impacts the source, the default).
SOURCE_IMPACTS_TARGET = frozenset({RelType.CONTAINS, RelType.SUPPORTS})


class ConfigurationItem(Record):
    """A CI. ``number`` is ``CI0000042`` (per tenant). ``attributes`` holds the class-specific attributes,
    validated per class by the services. ``external_ref`` keys CIs brought in by an import or discovery."""

    number = models.CharField(max_length=20, unique=True)
    name = models.CharField(max_length=200)
    ci_class = models.CharField(max_length=30, choices=CIClass.choices)
    lifecycle = models.CharField(max_length=20, choices=Lifecycle.choices, default=Lifecycle.OPERATIONAL)
    owner = models.ForeignKey("people.Person", on_delete=models.PROTECT, null=True, related_name="+")
    support_group = models.ForeignKey("people.Group", on_delete=models.PROTECT, null=True, related_name="+")
    description = models.TextField(blank=True)
    attributes = models.JSONField(default=dict, blank=True)
    external_ref = models.CharField(max_length=200, null=True, unique=True)

    class Meta:
        ordering = ["name", "id"]
        indexes = [models.Index(fields=["ci_class", "name"], name="ci_class_name")]

    def __str__(self) -> str:
        return f"{self.name} ({self.get_ci_class_display()})"


class CIRelationship(models.Model):
    """``source`` <rel_type> ``target``. ``impact_from`` -> ``impact_to`` is the same edge in the direction
    a failure travels (see SOURCE_IMPACTS_TARGET), set on save, so impact analysis follows one index."""

    source = models.ForeignKey(ConfigurationItem, on_delete=models.CASCADE, related_name="outgoing")
    target = models.ForeignKey(ConfigurationItem, on_delete=models.CASCADE, related_name="incoming")
    rel_type = models.CharField(max_length=20, choices=RelType.choices)
    # No index of its own: ci_rel_impact below leads with it.
    impact_from = models.ForeignKey(
        ConfigurationItem, on_delete=models.CASCADE, related_name="+", db_index=False
    )
    impact_to = models.ForeignKey(ConfigurationItem, on_delete=models.CASCADE, related_name="+")

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(fields=["source", "target", "rel_type"], name="uniq_ci_relationship"),
            models.CheckConstraint(condition=~models.Q(source=models.F("target")), name="ci_rel_not_self"),
        ]
        # Covers impact analysis's per-level query, so it reads the index only (no table rows).
        indexes = [
            models.Index(fields=["impact_from", "impact_to"], include=["rel_type"], name="ci_rel_impact")
        ]

    def save(self, *args: Any, **kwargs: Any) -> None:
        self.impact_from_id, self.impact_to_id = impact_direction(
            self.source_id, self.target_id, self.rel_type
        )
        super().save(*args, **kwargs)


def impact_direction(source_id: Any, target_id: Any, rel_type: str) -> tuple[Any, Any]:
    """(impact_from, impact_to) of a relationship: which CI's failure reaches which."""
    if rel_type in SOURCE_IMPACTS_TARGET:
        return source_id, target_id
    return target_id, source_id


class DiscoveryState(models.Model):
    """What discovery last applied for one endpoint agent (modules/cmdb/discovery.py). Bigint key.

    ``agent_id`` is the control-plane agent's id (no foreign key into public); ``ci`` its computer CI
    (``external_ref`` ``agent:<agent_id>``). ``fingerprint`` is the SHA-256 of the last applied inventory
    as discovery reads it (attributes, software, site), so an unchanged inventory is recognised with one
    comparison and writes nothing to the CI, its relationships or its history; ``last_inventory_at`` (UTC)
    is when the agent collected it.
    """

    agent_id = models.UUIDField(unique=True)
    ci = models.OneToOneField(ConfigurationItem, on_delete=models.CASCADE, related_name="+")
    fingerprint = models.CharField(max_length=64, blank=True)
    last_inventory_at = models.DateTimeField(null=True)
