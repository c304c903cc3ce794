"""Console pages: /t/<tenant>/incidents/..."""

from django.urls import path

from . import views

urlpatterns = [
    path("", views.incident_list, name="incident_list"),
    path("new/", views.incident_create, name="incident_create"),
    path("<str:number>/", views.incident_detail, name="incident_detail"),
    path("<str:number>/edit/", views.incident_edit, name="incident_edit"),
    path("<str:number>/actions/", views.incident_action, name="incident_action"),
    path("<str:number>/assign/", views.incident_assign, name="incident_assign"),
    path("<str:number>/comments/", views.incident_comment, name="incident_comment"),
]
