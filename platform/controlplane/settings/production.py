"""Production settings: every secret and endpoint comes from the environment; HTTPS only."""

from __future__ import annotations

import os

from .base import *  # noqa: F403

SECRET_KEY = os.environ["SECRET_KEY"]
if not DATABASES:  # noqa: F405
    raise RuntimeError("DATABASE_URL must be set in production")
SESSION_COOKIE_SECURE = True
CSRF_COOKIE_SECURE = True
SESSION_COOKIE_NAME = "__Host-sessionid"
CSRF_COOKIE_NAME = "__Host-csrftoken"
SECURE_HSTS_SECONDS = 31536000
SECURE_CONTENT_TYPE_NOSNIFF = True
# Static files: `manage.py collectstatic --noinput` on deploy writes hashed, compressed copies to
# STATIC_ROOT; WhiteNoise serves them with far-future cache headers.
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}
