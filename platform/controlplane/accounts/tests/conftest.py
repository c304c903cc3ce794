"""Fixtures of the accounts tests: the real SMTP server (aiosmtpd) of the integration tests."""

from tests.integration.conftest import smtp  # noqa: F401 - a fixture, registered by the import
