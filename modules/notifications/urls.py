"""Console pages: /t/<tenant>/notifications/..."""

from django.urls import path

from . import views

urlpatterns = [
    path("", views.notification_list, name="notification_list"),
    path("read-all/", views.notification_read_all, name="notification_read_all"),
    path("preferences/", views.notification_preferences, name="notification_preferences"),
    path("settings/", views.notification_settings, name="notification_settings"),
    path("webhooks/", views.webhook_list, name="notification_webhooks"),
    path("webhooks/<uuid:endpoint_id>/", views.webhook_detail, name="notification_webhook"),
    path("webhooks/<uuid:endpoint_id>/active/", views.webhook_set_active, name="notification_webhook_active"),
    path("webhooks/<uuid:endpoint_id>/delete/", views.webhook_delete, name="notification_webhook_delete"),
    path("<uuid:notification_id>/read/", views.notification_read, name="notification_read"),
]
