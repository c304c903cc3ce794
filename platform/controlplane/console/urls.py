from django.urls import path

from . import views

urlpatterns = [
    path("", views.home, name="console_home"),
    path("t/<slug:tenant>/", views.tenant_home, name="tenant_home"),
    path("me/tokens/", views.tokens, name="console_tokens"),
]
