"""Portal home, help articles and the account page."""

from django.urls import path

from controlplane.accounts.views import portal_security, sign_out_everywhere

from . import views

urlpatterns = [
    path("", views.home, name="portal_home"),
    path("knowledge/", views.knowledge_search, name="portal_knowledge"),
    path("knowledge/<str:number>/", views.knowledge_article, name="portal_article"),
    path("account/", views.account, name="portal_account"),
    path("account/sign-out-everywhere/", sign_out_everywhere, name="sign_out_everywhere"),
    path("security/", portal_security, name="portal_security"),
]
