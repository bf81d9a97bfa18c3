# Load the Celery app whenever Django starts so that @shared_task binds to it and
# enqueue_on_commit() has a configured app in every process (web, worker, shell).
from .celery import app as celery_app

__all__ = ("celery_app",)
