"""Console pages: /t/<tenant>/problems/... (fixed paths before the problem number)."""

from django.urls import path

from . import views

urlpatterns = [
    path("", views.problem_list, name="problem_list"),
    path("new/", views.problem_create, name="problem_create"),
    path("known-errors/", views.known_error_list, name="known_error_list"),
    path("known-errors/new/", views.known_error_create, name="known_error_create"),
    path("known-errors/search/", views.known_error_search, name="known_error_search"),
    path("known-errors/<str:number>/", views.known_error_detail, name="known_error_detail"),
    path("known-errors/<str:number>/actions/", views.known_error_action, name="known_error_action"),
    path("candidates/", views.candidate_list, name="problem_candidates"),
    path("candidates/accept/", views.candidate_accept, name="problem_candidate_accept"),
    path("settings/", views.problem_settings, name="problem_settings"),
    path("<str:number>/", views.problem_detail, name="problem_detail"),
    path("<str:number>/edit/", views.problem_edit, name="problem_edit"),
    path("<str:number>/actions/", views.problem_action, name="problem_action"),
    path("<str:number>/assign/", views.problem_assign, name="problem_assign"),
    path("<str:number>/comments/", views.problem_comment, name="problem_comment"),
    path("<str:number>/incidents/", views.problem_incident_link, name="problem_incident_link"),
    path(
        "<str:number>/incidents/<str:incident>/unlink/",
        views.problem_incident_unlink,
        name="problem_incident_unlink",
    ),
    path("<str:number>/known-errors/", views.problem_known_error_create, name="problem_known_error_create"),
]
