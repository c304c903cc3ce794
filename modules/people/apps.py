from django.apps import AppConfig


class PeopleConfig(AppConfig):
    name = "modules.people"
    label = "people"
    verbose_name = "People and groups directory (tenant plane)"
