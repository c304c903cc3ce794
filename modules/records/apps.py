from django.apps import AppConfig


class RecordsConfig(AppConfig):
    name = "modules.records"
    label = "records"
    verbose_name = "Records: numbering, comments, activity history (tenant plane)"
