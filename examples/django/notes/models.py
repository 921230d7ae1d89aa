"""The example's models: a note posted through the front page (by the web process itself, or by
the Celery worker for POST /later), and the heartbeat the beat process keeps."""
from django.db import models


class Note(models.Model):
    text = models.CharField(max_length=200)
    created = models.DateTimeField(auto_now_add=True)
    via = models.CharField(max_length=10, default="web")  # "web" or "worker"

    class Meta:
        ordering = ["-created"]

    def __str__(self):
        return self.text


class Heartbeat(models.Model):
    """Written by the periodic task `notes.tasks.heartbeat`: beat sent it, the worker ran it."""
    name = models.CharField(max_length=50, unique=True)
    count = models.PositiveIntegerField(default=0)
    last = models.DateTimeField(null=True)

    def __str__(self):
        return f"{self.name}: {self.count}"
