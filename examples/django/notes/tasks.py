"""Celery tasks of the example: `add_note`, sent by the web process (POST /later) and run by the
worker; `heartbeat`, sent by beat every HEARTBEAT_SECONDS (CELERY_BEAT_SCHEDULE in settings).
Each leaves a row the front page shows, so you can see both processes work."""

from celery import shared_task
from django.db.models import F
from django.utils import timezone

from .models import Heartbeat, Note


@shared_task
def add_note(text):
    Note.objects.create(text=text[:200], via="worker")


@shared_task
def heartbeat():
    Heartbeat.objects.get_or_create(name="beat")
    Heartbeat.objects.filter(name="beat").update(count=F("count") + 1, last=timezone.now())
