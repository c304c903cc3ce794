"""Console pages of a tenant's branding and domains, under /t/<slug>/."""

from django.urls import path

from . import views

urlpatterns = [
    path("branding/", views.console_branding, name="tenant_branding"),
    path("branding/logo/", views.logo, name="tenant_branding_logo"),
    path("domains/", views.console_domains, name="tenant_domains"),
    path("domains/<int:domain_id>/verify/", views.console_domain_verify, name="tenant_domain_verify"),
    path("domains/<int:domain_id>/remove/", views.console_domain_remove, name="tenant_domain_remove"),
]
