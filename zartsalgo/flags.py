"""Short-lived shared flags ("a drain is pending") in Redis, or in this process without it.

Not Django's cache: its Redis backend builds a new client object on every call, which costs
more than the SET itself on the webhook hot path. One client per process, its pool reused.
Keys carry the Celery key prefix so test runs and deployments sharing a Redis stay apart.
"""

from __future__ import annotations

import threading

from django.conf import settings
from django.core.cache import cache

_client = None
_lock = threading.Lock()


def _redis():
    global _client
    if _client is None:
        with _lock:
            if _client is None:
                import redis

                _client = redis.Redis.from_url(settings.REDIS_URL, socket_timeout=2, socket_connect_timeout=2)
    return _client


def _key(name: str) -> str:
    return f"{settings.CELERY_BROKER_TRANSPORT_OPTIONS.get('global_keyprefix', '')}flag:{name}"


def flag_set_if_absent(name: str, *, ttl_seconds: int) -> bool:
    """Set the flag unless it is set (atomic). True when this call set it."""
    if settings.REDIS_URL:
        return bool(_redis().set(_key(name), b"1", nx=True, ex=ttl_seconds))
    return cache.add(_key(name), 1, timeout=ttl_seconds)


def flag_clear(name: str) -> None:
    if settings.REDIS_URL:
        _redis().delete(_key(name))
    else:
        cache.delete(_key(name))


def flag_is_set(name: str) -> bool:
    if settings.REDIS_URL:
        return bool(_redis().exists(_key(name)))
    return cache.get(_key(name)) is not None
