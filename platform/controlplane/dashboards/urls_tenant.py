from django.urls import path

from . import views

urlpatterns = [
    path("", views.tenant_dashboard, name="tenant_dashboard"),
    path("csv/<slug:chart>/", views.tenant_dashboard_csv, name="tenant_dashboard_csv"),
]
