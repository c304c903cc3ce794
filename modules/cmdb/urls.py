"""Console pages: /t/<tenant>/cmdb/..."""

from django.urls import path

from . import views

urlpatterns = [
    path("", views.ci_list, name="ci_list"),
    path("new/", views.ci_create, name="ci_create"),
    path("<str:number>/", views.ci_detail, name="ci_detail"),
    path("<str:number>/edit/", views.ci_edit, name="ci_edit"),
    path("<str:number>/relationships/", views.relationship_add, name="ci_relationship_add"),
    path(
        "<str:number>/relationships/<int:relationship_id>/delete/",
        views.relationship_remove,
        name="ci_relationship_remove",
    ),
]
