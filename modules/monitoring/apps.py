from django.apps import AppConfig


class MonitoringConfig(AppConfig):
    name = "modules.monitoring"
    label = "monitoring"
    verbose_name = "Monitoring: device metrics, alert rules and alerts, the script library (tenant plane)"
