from django.apps import AppConfig


class IncidentsConfig(AppConfig):
    name = "modules.incidents"
    label = "incidents"
    verbose_name = "Incidents (tenant plane)"
