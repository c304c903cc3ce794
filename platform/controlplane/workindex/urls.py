from django.urls import path

from . import views

urlpatterns = [path("", views.queue, name="work_queue")]
