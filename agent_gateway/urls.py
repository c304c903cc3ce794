"""Console pages: /t/<tenant>/agents/... (agents, the approval queue, enrolment tokens, commands)."""

from django.urls import path

from . import views

urlpatterns = [
    path("", views.agent_list, name="agent_list"),
    path("tokens/", views.enrolment_tokens, name="agent_tokens"),
    path("tokens/<int:token_id>/revoke/", views.enrolment_token_revoke, name="agent_token_revoke"),
    path("<uuid:agent_id>/", views.agent_detail, name="agent_detail"),
    path("<uuid:agent_id>/decide/", views.agent_decide, name="agent_decide"),
    path("<uuid:agent_id>/revoke/", views.agent_revoke, name="agent_revoke"),
    path("<uuid:agent_id>/commands/", views.command_new, name="agent_command_new"),
    path("commands/<uuid:command_id>/decide/", views.command_decide, name="agent_command_decide"),
]
