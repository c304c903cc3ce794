"""Console pages: /t/<tenant>/requests/... (fixed paths before <number>)."""

from django.urls import path

from . import views

urlpatterns = [
    path("", views.request_list, name="request_list"),
    path("catalog/", views.catalog, name="catalog"),
    path("catalog/categories/new/", views.category_create, name="catalog_category_create"),
    path("catalog/categories/<uuid:category_id>/edit/", views.category_edit, name="catalog_category_edit"),
    path("catalog/items/new/", views.catalog_item_edit, name="catalog_item_create"),
    path("catalog/items/<uuid:item_id>/edit/", views.catalog_item_edit, name="catalog_item_edit"),
    path("catalog/items/<uuid:item_id>/order/", views.catalog_order, name="catalog_order"),
    path("approvals/<uuid:approval_id>/decide/", views.approval_decide, name="approval_decide"),
    path("approvals/<uuid:approval_id>/resend/", views.approval_resend, name="approval_resend"),
    path("approvals/<uuid:approval_id>/delegate/", views.approval_delegate, name="approval_delegate"),
    path("tasks/<uuid:task_id>/", views.task_action, name="request_task_action"),
    path("<str:number>/", views.request_detail, name="request_detail"),
    path("<str:number>/cancel/", views.request_cancel, name="request_cancel"),
    path("<str:number>/comments/", views.request_comment, name="request_comment"),
]
