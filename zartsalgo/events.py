"""The envelope a normalized business event travels in from integrations to its consumers.

It lives here, below every app, so that lower layers (leads) can consume events without
importing the integrations app that produced them.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field
from typing import Any


@dataclass
class BusinessEvent:
    normalized_event_id: int | None  # the stored NormalizedEvent (None only for events built outside the pipeline)
    event_type: str
    client: Any  # leads.models.Client
    occurred_at: datetime.datetime
    provider: str
    data: dict[str, Any] = field(default_factory=dict)
    signal: Any = None  # leads.services.LeadSignal | None
    lead: Any = None  # leads.models.Lead | None, set by the leads consumer for those after it
