"""Settings for the webhook benchmark (bench/webhooks.py): the project's settings, bench URLs.

Everything else (DATABASE_URL, REDIS_URL, CELERY_KEY_PREFIX, CONN_MAX_AGE, LOG_LEVEL) comes from
the environment webhooks.py gives gunicorn, the Celery workers and itself, so the three run the
very configuration production would, pointed at the bench database and a Redis db of its own.
"""

from zartsalgo.settings import *  # noqa: F403 - a settings module extends another this way

# The project's URLs plus the baseline view (bench/webhooks_urls.py).
ROOT_URLCONF = "bench.webhooks_urls"
