"""Portal pages of the shared tenant parts on the tenant's own host: attachment download and upload."""

from django.urls import path

from . import views

urlpatterns = [
    path("attachments/add/", views.attachment_upload, name="portal_attachment_upload"),
    path("attachments/<uuid:attachment_id>/", views.attachment_download, name="portal_attachment_download"),
]
