"""Settings for the scale benchmark (bench/portal_scale.py): the project's settings, bench URLs.

DATABASE_URL, CONN_MAX_AGE, DEBUG=0 and LOG_LEVEL come from the environment portal_scale.py gives
gunicorn and itself, so both run the configuration production would, pointed at the scale database.
"""

from zartsalgo.settings import *  # noqa: F403 - a settings module extends another this way

# The project's URLs plus the baseline view (bench/scale_urls.py).
ROOT_URLCONF = "bench.scale_urls"
