"""The example's Celery app: `celery -A guestbook worker` and `celery -A guestbook beat` (the
worker and beat [processes] in deploy.toml) load it. Its settings are Django's CELERY_* ones
(guestbook/settings.py: the broker is REDIS_URL), its tasks each app's tasks.py (notes/tasks.py).
"""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "guestbook.settings")

app = Celery("guestbook")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
