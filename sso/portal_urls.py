"""A tenant's portal host: discovery and the SAML endpoints of the tenant's connections."""

from django.urls import path

from . import views

urlpatterns = [
    path("start/", views.sso_start, name="portal_sso_start"),
    path("saml/<uuid:connection_id>/metadata/", views.saml_metadata, name="portal_sso_saml_metadata"),
    path("saml/<uuid:connection_id>/login/", views.saml_login, name="portal_sso_saml_login"),
    path("saml/<uuid:connection_id>/acs/", views.saml_acs, name="portal_sso_saml_acs"),
    path("saml/<uuid:connection_id>/sls/", views.saml_sls, name="portal_sso_saml_sls"),
    path("oidc/<uuid:oidc_connection_id>/login/", views.oidc_login, name="portal_sso_oidc_login"),
]
