from django.apps import AppConfig


class ProvidersConfig(AppConfig):
    name = "controlplane.providers"
    label = "providers"
    verbose_name = "Providers (MSPs)"
