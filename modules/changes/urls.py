"""Console pages: /t/<tenant>/changes/..."""

from django.urls import path

from . import views

urlpatterns = [
    path("", views.change_list, name="change_list"),
    path("new/", views.change_create, name="change_create"),
    path("<str:number>/", views.change_detail, name="change_detail"),
    path("<str:number>/actions/", views.change_action, name="change_action"),
    path("<str:number>/votes/", views.change_vote, name="change_vote"),
    path("<str:number>/comments/", views.change_comment, name="change_comment"),
    path("<str:number>/cis/", views.change_ci_add, name="change_ci_add"),
    path("<str:number>/cis/remove/", views.change_ci_remove, name="change_ci_remove"),
    path("<str:number>/risk/", views.change_risk, name="change_risk"),
]
