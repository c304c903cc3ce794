"""Console pages: /t/<tenant>/mailin/..."""

from django.urls import path

from . import views

urlpatterns = [
    path("", views.mailin_settings, name="mailin_settings"),
]
