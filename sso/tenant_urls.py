"""Console pages of a tenant's SAML connections, under /t/<slug>/sso/."""

from django.urls import path

from . import views

SAML, OIDC = {"protocol": "saml"}, {"protocol": "oidc"}

urlpatterns = [
    path("", views.connections, name="sso_tenant_connections"),
    path("new/", views.connection_new, SAML, name="sso_tenant_connection_new"),
    path("<uuid:connection_id>/", views.connection_edit, SAML, name="sso_tenant_connection"),
    path(
        "<uuid:connection_id>/deactivate/",
        views.connection_deactivate,
        SAML,
        name="sso_tenant_connection_deactivate",
    ),
    path("oidc/new/", views.connection_new, OIDC, name="sso_tenant_oidc_connection_new"),
    path(
        "oidc/<uuid:oidc_connection_id>/",
        views.connection_edit,
        OIDC,
        name="sso_tenant_oidc_connection",
    ),
    path(
        "oidc/<uuid:oidc_connection_id>/deactivate/",
        views.connection_deactivate,
        OIDC,
        name="sso_tenant_oidc_connection_deactivate",
    ),
]
