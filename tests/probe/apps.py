from django.apps import AppConfig


class ProbeConfig(AppConfig):
    """A tenant app that exists only in tests: its second migration stands for "a new migration" in the
    stale-template test (tenants/tests/test_provisioning.py)."""

    name = "tests.probe"
    label = "probe"
