"""Console host: the provider's SAML connections (``/sso/``), discovery and the SAML endpoints of
provider connections (``/sso/saml/<id>/...``)."""

from django.urls import path

from . import views

SAML, OIDC = {"protocol": "saml"}, {"protocol": "oidc"}

urlpatterns = [
    path("", views.connections, name="sso_provider_connections"),
    path("new/", views.connection_new, SAML, name="sso_provider_connection_new"),
    path("start/", views.sso_start, name="sso_start"),
    path("<uuid:provider_connection_id>/", views.connection_edit, SAML, name="sso_provider_connection"),
    path(
        "<uuid:provider_connection_id>/deactivate/",
        views.connection_deactivate,
        SAML,
        name="sso_provider_connection_deactivate",
    ),
    path("saml/<uuid:provider_connection_id>/metadata/", views.saml_metadata, name="sso_saml_metadata"),
    path("saml/<uuid:provider_connection_id>/login/", views.saml_login, name="sso_saml_login"),
    path("saml/<uuid:provider_connection_id>/acs/", views.saml_acs, name="sso_saml_acs"),
    path("saml/<uuid:provider_connection_id>/sls/", views.saml_sls, name="sso_saml_sls"),
    path("oidc/new/", views.connection_new, OIDC, name="sso_provider_oidc_connection_new"),
    path(
        "oidc/<uuid:provider_oidc_connection_id>/",
        views.connection_edit,
        OIDC,
        name="sso_provider_oidc_connection",
    ),
    path(
        "oidc/<uuid:provider_oidc_connection_id>/deactivate/",
        views.connection_deactivate,
        OIDC,
        name="sso_provider_oidc_connection_deactivate",
    ),
    path("oidc/<uuid:provider_oidc_connection_id>/login/", views.oidc_login, name="sso_oidc_login"),
]
