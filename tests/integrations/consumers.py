"""Consumers used by the pipeline tests, wired in through the real INTEGRATIONS_EVENT_CONSUMERS
setting. They fail on demand so retries and dead letters run through the real code."""

FAILURES = {"remaining": 0}


def flaky(*, event) -> None:
    if FAILURES["remaining"] > 0:
        FAILURES["remaining"] -= 1
        raise RuntimeError("downstream unavailable (test)")
