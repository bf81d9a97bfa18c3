"""The Celery application. Configuration comes from Django settings (CELERY_* names)."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "zartsalgo.settings")

app = Celery("zartsalgo")
app.config_from_object("django.conf:settings", namespace="CELERY")
# Tasks are found in each app's tasks.py; routing to queues is declared in settings.
app.autodiscover_tasks()
