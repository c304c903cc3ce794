"""ASGI entry point of the agent gateway (``uvicorn agent_gateway.asgi:application``), decision 0018.

Not Django's ASGI handler: the gateway is its own small application (agent_gateway.gateway), with Django
set up for its models, settings and the services its cold paths call."""

import os

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "controlplane.settings.production")
django.setup()

from agent_gateway.gateway import Gateway  # noqa: E402 (needs django.setup first)

application = Gateway()
