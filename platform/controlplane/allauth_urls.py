"""django-allauth's URLs (``allauth.urls``: accounts, social accounts and their providers) less its
unnamed legacy redirects (``social/...`` -> ``3rdparty/...``, deprecated by allauth): every route here
has a name, so the permission matrix (controlplane.routes) can give each one an entry."""

from allauth import urls as allauth_urls
from django.urls import URLPattern, URLResolver

urlpatterns: list[URLPattern | URLResolver] = [
    entry for entry in allauth_urls.urlpatterns if not (isinstance(entry, URLPattern) and entry.name is None)
]
