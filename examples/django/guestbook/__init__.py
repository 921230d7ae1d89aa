"""The example's project package. Loading the Celery app here (as Celery's Django guide does)
binds the @shared_task functions to it, so the web process sends tasks to the same broker."""

from .celery import app as celery_app

__all__ = ("celery_app",)
