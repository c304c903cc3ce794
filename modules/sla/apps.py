from django.apps import AppConfig


class SlaConfig(AppConfig):
    name = "modules.sla"
    label = "sla"
    verbose_name = "SLA engine: calendars, contracts, policies, timers (tenant plane)"
