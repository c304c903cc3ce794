"""URLs of the console host: provider home, tenant console under /t/<slug>/, the API, sign-in."""

from django.contrib import admin
from django.urls import include, path

from controlplane.api import api
from tenants.views import tls_ask

urlpatterns = [
    path("", include("controlplane.console.urls")),
    path("queue/", include("controlplane.workindex.urls")),
    path("dashboard/", include("controlplane.dashboards.urls")),
    path("t/<slug:tenant>/incidents/", include("modules.incidents.urls")),
    path("t/<slug:tenant>/cmdb/", include("modules.cmdb.urls")),
    path("t/<slug:tenant>/problems/", include("modules.problems.urls")),
    path("t/<slug:tenant>/changes/", include("modules.changes.urls")),
    path("t/<slug:tenant>/knowledge/", include("modules.knowledge.urls")),
    path("t/<slug:tenant>/requests/", include("modules.requests.urls")),
    path("t/<slug:tenant>/sla/", include("modules.sla.urls")),
    path("t/<slug:tenant>/monitoring/", include("modules.monitoring.urls")),
    path("t/<slug:tenant>/notifications/", include("modules.notifications.urls")),
    path("t/<slug:tenant>/mailin/", include("controlplane.mailin.urls")),
    path("t/<slug:tenant>/dashboard/", include("controlplane.dashboards.urls_tenant")),
    path("t/<slug:tenant>/users/", include("controlplane.accounts.tenant_urls")),
    path("t/<slug:tenant>/agents/", include("agent_gateway.urls")),
    path("team/", include("controlplane.accounts.urls")),
    path("t/<slug:tenant>/sso/", include("sso.tenant_urls")),  # the tenant's SAML connections
    path("t/<slug:tenant>/", include("tenants.urls")),  # branding/, domains/
    # Shared parts (search, attachments, links) last: they match only their own sub-paths.
    path("t/<slug:tenant>/", include("modules.records.urls")),
    path("sso/", include("sso.urls")),  # the provider's SAML connections, discovery, SAML endpoints
    path("api/v1/", api.urls),
    path("tls/ask/", tls_ask, name="tls_ask"),  # the reverse proxy's on-demand TLS check (README)
    path("accounts/", include("controlplane.allauth_urls")),
    path("admin/", admin.site.urls),  # control plane only: no Django admin inside tenant schemas
]
