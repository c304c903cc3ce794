from django.apps import AppConfig


class NotificationsConfig(AppConfig):
    name = "modules.notifications"
    label = "notifications"
    verbose_name = "Notifications: email, in-app and webhooks (tenant plane)"
