from django.apps import AppConfig


class DashboardsConfig(AppConfig):
    name = "controlplane.dashboards"
    label = "dashboards"
    verbose_name = "Dashboards"
