"""WSGI entry point. Tenant code stays on WSGI: async code loses the tenant (django-tenants #820)."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "controlplane.settings.production")
application = get_wsgi_application()
