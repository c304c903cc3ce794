"""URLs of a tenant's branded portal host (<slug>.localhost:8000 in development)."""

from django.urls import include, path

urlpatterns = [
    path("", include("controlplane.portal.urls")),  # home, help articles
    path("", include("tenants.portal_urls")),  # branding
    path("", include("modules.incidents.portal_urls")),
    path("", include("modules.requests.portal_urls")),
    path("", include("modules.records.portal_urls")),
    path("notifications/", include("modules.notifications.portal_urls")),
    path("sso/", include("sso.portal_urls")),  # discovery, the tenant's SAML endpoints and OIDC starts
    path("accounts/", include("controlplane.allauth_urls")),
]
