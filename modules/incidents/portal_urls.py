"""Portal pages on the tenant's own host."""

from django.urls import path

from . import views

urlpatterns = [
    path("report/", views.portal_report, name="portal_report"),
    path("incidents/<str:number>/", views.portal_incident, name="portal_incident"),
    path("incidents/<str:number>/survey/", views.portal_survey, name="portal_survey"),
]
