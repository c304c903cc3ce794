"""Console pages of a tenant's SAML connections, under /t/<slug>/sso/."""

from django.urls import path

from . import views

urlpatterns = [
    path("", views.tenant_connections, name="sso_tenant_connections"),
    path("new/", views.tenant_connection_new, name="sso_tenant_connection_new"),
    path("<uuid:connection_id>/", views.tenant_connection_edit, name="sso_tenant_connection"),
    path(
        "<uuid:connection_id>/deactivate/",
        views.tenant_connection_deactivate,
        name="sso_tenant_connection_deactivate",
    ),
    path("oidc/new/", views.tenant_oidc_connection_new, name="sso_tenant_oidc_connection_new"),
    path(
        "oidc/<uuid:oidc_connection_id>/",
        views.tenant_oidc_connection_edit,
        name="sso_tenant_oidc_connection",
    ),
    path(
        "oidc/<uuid:oidc_connection_id>/deactivate/",
        views.tenant_oidc_connection_deactivate,
        name="sso_tenant_oidc_connection_deactivate",
    ),
]
