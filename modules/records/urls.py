"""Console pages of the shared tenant parts: /t/<tenant>/search/, attachments/, links/, views/ (saved list views)."""

from django.urls import path

from . import views

urlpatterns = [
    path("search/", views.search_page, name="record_search"),
    path("attachments/add/", views.attachment_upload, name="attachment_upload"),
    path("attachments/<uuid:attachment_id>/", views.attachment_download, name="attachment_download"),
    path("assignees/", views.assignee_options, name="assignee_options"),
    path("links/add/", views.link_add, name="link_add"),
    path("links/<uuid:link_id>/delete/", views.link_remove, name="link_remove"),
    path("views/save/", views.saved_view_create, name="saved_view_create"),
    path("views/<uuid:view_id>/delete/", views.saved_view_delete, name="saved_view_delete"),
]
