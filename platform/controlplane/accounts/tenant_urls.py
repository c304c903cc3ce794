"""A client's users and roles, in the console under ``/t/<slug>/users/``."""

from django.urls import path

from . import views

urlpatterns = [
    path("", views.tenant_users, name="tenant_users"),
    path("<int:membership_id>/remove/", views.tenant_user_remove, name="tenant_user_remove"),
    path("<int:membership_id>/mfa-reset/", views.tenant_user_mfa_reset, name="tenant_user_mfa_reset"),
]
