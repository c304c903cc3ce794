"""Log lines name the tenant they were written in."""

from __future__ import annotations

import logging

import pytest
from django_tenants.utils import tenant_context

from controlplane.logs import TenantContextFilter
from tenants.models import Tenant


def test_log_records_carry_the_tenant(tenant_a: Tenant, caplog: pytest.LogCaptureFixture) -> None:
    logger = logging.getLogger("tests.tenant")
    logger.addFilter(TenantContextFilter())
    with caplog.at_level(logging.INFO, logger="tests.tenant"):
        logger.info("outside")
        with tenant_context(tenant_a):
            logger.info("inside")
    assert [(r.getMessage(), r.tenant) for r in caplog.records] == [("outside", "public"), ("inside", "acme")]  # type: ignore[attr-defined]
