"""The provider's team, on the console host (``/team/``)."""

from django.urls import path

from . import views

urlpatterns = [
    path("", views.team, name="console_team"),
    path("<int:team_member_id>/", views.team_member, name="console_team_member"),
    path("<int:team_member_id>/remove/", views.team_member_remove, name="console_team_member_remove"),
    path(
        "<int:team_member_id>/mfa-reset/", views.team_member_mfa_reset, name="console_team_member_mfa_reset"
    ),
]
