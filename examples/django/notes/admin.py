"""The notes in Django's admin (/admin/; make a user with `invoke manage -- createsuperuser`)."""
from django.contrib import admin

from .models import Heartbeat, Note

admin.site.register(Note, list_display=("text", "via", "created"))
admin.site.register(Heartbeat, list_display=("name", "count", "last"))
