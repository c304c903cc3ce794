from django.urls import path

from . import views

urlpatterns = [
    path("", views.cross_client, name="dashboard"),
    path("csv/<slug:chart>/", views.cross_client_csv, name="dashboard_csv"),
]
