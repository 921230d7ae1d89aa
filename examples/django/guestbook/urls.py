"""URL routes of the example project."""
from django.contrib import admin
from django.urls import path

from notes import views

urlpatterns = [
    path("", views.index, name="index"),
    path("later", views.later, name="later"),
    path("healthz", views.healthz, name="healthz"),
    path("admin/", admin.site.urls),
]
