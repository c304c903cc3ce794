"""Console pages: /t/<tenant>/notifications/..."""

from django.urls import path

from . import views

urlpatterns = [
    path("", views.notification_list, name="notification_list"),
    path("read-all/", views.notification_read_all, name="notification_read_all"),
    path("preferences/", views.notification_preferences, name="notification_preferences"),
    path("<uuid:notification_id>/read/", views.notification_read, name="notification_read"),
]
