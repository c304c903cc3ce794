"""Console pages: /t/<tenant>/knowledge/..."""

from django.urls import path

from . import views

urlpatterns = [
    path("", views.article_list, name="article_list"),
    path("new/", views.article_create, name="article_create"),
    path("<str:number>/", views.article_detail, name="article_detail"),
    path("<str:number>/edit/", views.article_edit, name="article_edit"),
    path("<str:number>/actions/", views.article_action, name="article_action"),
    path("<str:number>/feedback/", views.article_feedback, name="article_feedback"),
    path("<str:number>/links/", views.article_link_add, name="article_link_add"),
]
