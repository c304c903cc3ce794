from django.urls import path

from controlplane.accounts.views import provider_security, sign_out_everywhere

from . import views

urlpatterns = [
    path("", views.home, name="console_home"),
    path("switch/", views.switch, name="console_switch"),
    path("t/<slug:tenant>/", views.tenant_home, name="tenant_home"),
    path("me/profile/", views.profile, name="console_profile"),
    path("me/tokens/", views.tokens, name="console_tokens"),
    path("me/sign-out-everywhere/", sign_out_everywhere, name="sign_out_everywhere"),
    path("provider/security/", provider_security, name="provider_security"),
]
