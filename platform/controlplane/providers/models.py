"""Providers: the MSPs, paying customers of the platform. Control plane (schema `public`)."""

from __future__ import annotations

from django.db import models


class Provider(models.Model):
    """An MSP. Owns client tenants and employs technicians."""

    name = models.CharField(max_length=200)
    slug = models.SlugField(max_length=50, unique=True)
    # Every member (owners, admins, technicians) must set up two-factor authentication before working.
    require_mfa_for_technicians = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name
