from django.apps import AppConfig


class WorkIndexConfig(AppConfig):
    name = "controlplane.workindex"
    label = "workindex"
    verbose_name = "Cross-client work index"
