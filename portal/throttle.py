"""Attempt limits for the portal's public forms (sign-in, password reset).

Fixed windows counted in the cache (Redis in production, shared by every web process; the
in-process cache on the embedded default). A key is one of a username, an email address or a
client IP, hashed so no address is stored in the cache in clear. Losing the counts (a cache
restart) only gives an attacker one fresh window, never locks anyone out for longer.
"""

import hashlib
import time

from django.conf import settings
from django.core.cache import cache


def _bucket(scope: str, value: str, window: int) -> str:
    digest = hashlib.sha256(value.strip().casefold().encode()).hexdigest()[:32]
    return f"{settings.PORTAL_THROTTLE_PREFIX}:{scope}:{digest}:{int(time.time() // window)}"


def throttle_count(*, scope: str, value: str, window: int) -> int:
    """Attempts recorded for `value` in the current window."""
    return int(cache.get(_bucket(scope, value, window)) or 0)


def throttle_hit(*, scope: str, value: str, window: int) -> int:
    """Record one attempt; returns the window's count including it."""
    key = _bucket(scope, value, window)
    if cache.add(key, 1, timeout=window + 5):
        return 1
    try:
        return cache.incr(key)
    except ValueError:  # expired between add and incr
        cache.add(key, 1, timeout=window + 5)
        return 1


def client_ip(request) -> str:
    # REMOTE_ADDR only: behind the load balancer it is set from the proxy header by the server
    # (gunicorn --forwarded-allow-ips), never trusted from a header the client could write.
    return request.META.get("REMOTE_ADDR") or "unknown"
