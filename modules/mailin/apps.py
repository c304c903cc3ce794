from django.apps import AppConfig


class MailinTenantConfig(AppConfig):
    name = "modules.mailin"
    label = "mailin_tenant"
    verbose_name = "Email in: turning a received message into a record or a comment (tenant plane)"
