"""Log records carry the tenant they were written in (../shared/ARCHITECTURE.md: log context includes the tenant)."""

from __future__ import annotations

import logging

from django.db import connection


class TenantContextFilter(logging.Filter):
    """Adds ``record.tenant``: the slug of the tenant the connection is in, or ``public``."""

    def filter(self, record: logging.LogRecord) -> bool:
        tenant = getattr(connection, "tenant", None)
        record.tenant = getattr(tenant, "slug", None) or getattr(connection, "schema_name", None) or "public"
        return True
