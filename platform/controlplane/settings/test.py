"""Test settings: a real PostgreSQL (DATABASE_URL or embedded) and a real broker (REDIS_URL or embedded)."""

from __future__ import annotations

from controlplane import devstack

from .base import *  # noqa: F403
from .base import broker_transport_options, database_config

SECRET_KEY = "test-only-key-not-secret-0123456789abcdef"
DATABASE_URL = devstack.database_url()
DATABASES = {"default": database_config(DATABASE_URL)}
CELERY_BROKER_URL = devstack.broker_url(DATABASE_URL)
CELERY_BROKER_TRANSPORT_OPTIONS = broker_transport_options(CELERY_BROKER_URL)
# Tests never share a queue with a `make run` on the same machine.
CELERY_TASK_DEFAULT_QUEUE = "itsm-test"
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # fast hashing in tests only
EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
CONSOLE_HOSTS = [*CONSOLE_HOSTS, "testserver"]  # noqa: F405 - Django's test client host
# A tenant app that exists only in tests, to prove new migrations reach new tenants.
TENANT_APPS = [*TENANT_APPS, "tests.probe"]  # noqa: F405
INSTALLED_APPS = [*INSTALLED_APPS, "tests.probe"]  # noqa: F405
# Static files straight from the app and STATICFILES_DIRS folders (no collectstatic in tests).
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = True
