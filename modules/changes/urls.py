"""Console pages: /t/<tenant>/changes/... (fixed paths before the change number)."""

from django.urls import path

from . import views

urlpatterns = [
    path("", views.change_list, name="change_list"),
    path("new/", views.change_create, name="change_create"),
    path("templates/", views.template_list, name="change_template_list"),
    path("templates/new/", views.template_edit, name="change_template_create"),
    path("templates/<uuid:template_id>/edit/", views.template_edit, name="change_template_edit"),
    path("cab/", views.cab_page, name="change_cab"),
    path("cab/<int:member_id>/remove/", views.cab_remove, name="change_cab_remove"),
    path("blackouts/", views.blackout_page, name="change_blackouts"),
    path("blackouts/<uuid:blackout_id>/remove/", views.blackout_remove, name="change_blackout_remove"),
    path("settings/", views.change_settings, name="change_settings"),
    path("<str:number>/", views.change_detail, name="change_detail"),
    path("<str:number>/edit/", views.change_edit, name="change_edit"),
    path("<str:number>/actions/", views.change_action, name="change_action"),
    path("<str:number>/votes/", views.change_vote, name="change_vote"),
    path("<str:number>/assign/", views.change_assign, name="change_assign"),
    path("<str:number>/comments/", views.change_comment, name="change_comment"),
    path("<str:number>/cis/", views.change_ci_add, name="change_ci_add"),
    path("<str:number>/cis/remove/", views.change_ci_remove, name="change_ci_remove"),
    path("<str:number>/risk/", views.change_risk, name="change_risk"),
]
