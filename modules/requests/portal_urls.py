"""Portal pages of the service catalog, requests and approvals on the tenant's own host."""

from django.urls import path

from . import portal_views as views

urlpatterns = [
    path("catalog/", views.portal_catalog, name="portal_catalog"),
    path("catalog/<uuid:item_id>/", views.portal_catalog_item, name="portal_catalog_item"),
    path("requests/", views.portal_my, name="portal_my"),
    path("requests/<str:number>/", views.portal_request, name="portal_request"),
    path("approvals/", views.portal_approvals, name="portal_approvals"),
    path("approvals/<uuid:approval_id>/", views.portal_approval_decide, name="portal_approval_decide"),
]
