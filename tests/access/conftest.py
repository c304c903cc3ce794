"""The route-matrix walk reuses the accessibility walk's tenant with one record of each kind."""

from tests.accessibility.test_pages import pages  # noqa: F401  (a fixture, re-exported)
