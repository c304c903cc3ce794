"""The Django project and the control-plane apps (schema `public`)."""

from .celery import app as celery_app

__all__ = ["celery_app"]
