"""Dashboards' own counter: records opened per tenant, day, record type and category. Control plane.

Why a table of its own: the daily rollup (``workindex.TenantDailyRollup``) has no category, and the work
index (``workindex.WorkItem``) holds open records only, so a category column there would rank the backlog,
not the period's volume. "Top categories" is the categories with the most records opened in the chosen
days, which needs one more counter keyed by category. It is kept the same two ways as the rollup: live,
by the tenant services in the record's transaction (``services.dashboard_category_add`` /
``dashboard_category_move``), and rebuilt from the tenant schema with the nightly rollup rebuild
(``services.dashboard_category_rebuild``, called by ``workindex_rollup_rebuild``). Categories counted:
the incident's ``category`` (ITIL incident categorisation; ServiceNow's ``incident.category``), moved when
a technician re-categorises it; a service request once under each distinct catalog category of its items
(the name at submission; a renamed category is corrected by the nightly rebuild).
"""

from __future__ import annotations

from django.db import models


class TenantDailyCategory(models.Model):
    """Records of ``record_type`` opened on ``day`` (the tenant's local date) whose category is
    ``category`` (the text the record holds now, ``""`` when none; at most 100 characters)."""

    tenant = models.ForeignKey("tenants.Tenant", on_delete=models.CASCADE, related_name="+")
    provider = models.ForeignKey("providers.Provider", on_delete=models.CASCADE, related_name="+")
    day = models.DateField()
    record_type = models.CharField(max_length=40)
    category = models.CharField(max_length=100, blank=True)
    opened = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "day", "record_type", "category"], name="uniq_daily_category"
            )
        ]
        indexes = [models.Index(fields=["provider", "day"], name="daily_category_provider_day")]

    def __str__(self) -> str:
        return f"{self.tenant_id} {self.day} {self.record_type} {self.category!r}: {self.opened}"


class ProviderDailyCategory(models.Model):
    """``TenantDailyCategory`` summed over every tenant of ``provider``: the top-categories chart of a user
    who sees every client. Kept by the ``dashboards_category_totals`` trigger (migration 0002) in the
    transaction of every write of the per-tenant rows; never written by code."""

    provider = models.ForeignKey(
        "providers.Provider", on_delete=models.CASCADE, related_name="+", db_index=False
    )
    day = models.DateField()
    record_type = models.CharField(max_length=40)
    category = models.CharField(max_length=100, blank=True)
    opened = models.BigIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["provider", "day", "record_type", "category"], name="uniq_provider_category"
            )
        ]
