# Models for this app arrive with their issue (see README "Roadmap"); the app is wired in now
# so migrations, admin and Celery routing have their place from the start.
