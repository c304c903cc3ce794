"""Console pages: /t/<tenant>/monitoring/... (alerts, alert rules, the script library)."""

from django.urls import path

from . import views

urlpatterns = [
    path("", views.alert_list, name="monitoring_alerts"),
    path("rules/", views.rule_list, name="monitoring_rules"),
    path("rules/new/", views.rule_edit, name="monitoring_rule_create"),
    path("rules/<uuid:rule_id>/", views.rule_edit, name="monitoring_rule_edit"),
    path("rules/<uuid:rule_id>/delete/", views.rule_delete, name="monitoring_rule_delete"),
    path("scripts/", views.script_list, name="monitoring_scripts"),
    path("scripts/new/", views.script_edit, name="monitoring_script_create"),
    path("scripts/<uuid:script_id>/", views.script_edit, name="monitoring_script_edit"),
    path("scripts/<uuid:script_id>/approve/", views.script_approve, name="monitoring_script_approve"),
]
