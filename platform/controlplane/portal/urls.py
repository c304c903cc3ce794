"""Portal home and help articles."""

from django.urls import path

from . import views

urlpatterns = [
    path("", views.home, name="portal_home"),
    path("knowledge/", views.knowledge_search, name="portal_knowledge"),
    path("knowledge/<str:number>/", views.knowledge_article, name="portal_article"),
]
