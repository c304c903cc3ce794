"""Portal pages on the tenant's own host."""

from django.urls import path

from . import views

urlpatterns = [
    path("", views.portal_home, name="portal_home"),
    path("report/", views.portal_report, name="portal_report"),
    path("incidents/<str:number>/", views.portal_incident, name="portal_incident"),
]
