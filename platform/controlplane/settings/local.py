"""Development settings: `make run` and `python manage.py ...` on a workstation."""

from __future__ import annotations

import os

from controlplane import devstack

from .base import *  # noqa: F403
from .base import broker_transport_options, database_config

DEBUG = True
SECRET_KEY = os.environ.get("SECRET_KEY", "dev-only-insecure-key-change-me-in-production")
DATABASE_URL = devstack.database_url()
DATABASES = {"default": database_config(DATABASE_URL)}
CELERY_BROKER_URL = devstack.broker_url(DATABASE_URL)
CELERY_BROKER_TRANSPORT_OPTIONS = broker_transport_options(CELERY_BROKER_URL)
EMAIL_BACKEND = os.environ.get("EMAIL_BACKEND", "django.core.mail.backends.console.EmailBackend")
LOGGING["root"]["level"] = "INFO"  # noqa: F405
# `make run`: WhiteNoise serves from the finders and rereads changed files (no collectstatic), and
# runserver leaves static files to it so development serves them as production does.
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = True
INSTALLED_APPS = ["whitenoise.runserver_nostatic", *INSTALLED_APPS]  # noqa: F405
