"""Portal pages on the tenant's own host: /notifications/..."""

from django.urls import path

from . import views

urlpatterns = [
    path("", views.notification_list, name="portal_notification_list"),
    path("read-all/", views.notification_read_all, name="portal_notification_read_all"),
    path("preferences/", views.notification_preferences, name="portal_notification_preferences"),
    path("<uuid:notification_id>/read/", views.notification_read, name="portal_notification_read"),
]
