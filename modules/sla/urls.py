"""Console pages: /t/<tenant>/sla/... (SLA calendars, contracts and policies)."""

from django.urls import path

from . import views

urlpatterns = [
    path("", views.sla_home, name="sla_home"),
    path("calendars/new/", views.calendar_edit, name="sla_calendar_create"),
    path("calendars/subdivisions/", views.subdivision_options, name="sla_subdivisions"),
    path("calendars/<uuid:calendar_id>/", views.calendar_edit, name="sla_calendar_edit"),
    path("calendars/<uuid:calendar_id>/closed-days/", views.closed_day_add, name="sla_closed_day_add"),
    path(
        "calendars/<uuid:calendar_id>/closed-days/<str:day>/remove/",
        views.closed_day_remove,
        name="sla_closed_day_remove",
    ),
    path("contracts/new/", views.contract_edit, name="sla_contract_create"),
    path("contracts/<uuid:contract_id>/", views.contract_edit, name="sla_contract_edit"),
    path("contracts/<uuid:contract_id>/policies/new/", views.policy_edit, name="sla_policy_create"),
    path("policies/<uuid:policy_id>/", views.policy_edit, name="sla_policy_edit"),
]
