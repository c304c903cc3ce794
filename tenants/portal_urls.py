"""Branding on a tenant's portal host: the client admin's page and the logo."""

from django.urls import path

from . import views

urlpatterns = [
    path("branding/", views.portal_branding, name="portal_branding"),
    path("branding/logo/", views.logo, name="portal_logo"),
]
