"""Database routers that run before django-tenants' TenantSyncRouter."""

from __future__ import annotations

from typing import Any

from django.db import connections


class CacheTableRouter:
    """Let ``createcachetable`` create Django's DatabaseCache table (app label ``django_cache``) in the
    public schema. TenantSyncRouter allows only apps listed in SHARED_APPS/TENANT_APPS, and the cache
    model belongs to none, so without this the table would never be created. Tenant schemas never get
    one: ``search_path`` (``<tenant>, public``) finds the public table from inside a tenant request."""

    def allow_migrate(
        self, db: str, app_label: str, model_name: str | None = None, **hints: Any
    ) -> bool | None:
        if app_label != "django_cache":
            return None
        return getattr(connections[db], "schema_name", "public") == "public"
