"""Message bodies are Django templates over a fixed, plain context: lead and client fields only.

Plain dicts, never model instances, so a template cannot reach internal fields or relations
(notes, payloads, other leads). A missing value renders empty; `{{ lead.first_name|default:"there" }}`
gives a fallback. Email bodies are HTML-escaped (a lead named `<script>` stays text); SMS is not.
"""

from __future__ import annotations

from functools import cache

from django.template import Context, Engine

from leads.models import Client, Lead


@cache
def _engine(*, autoescape: bool) -> Engine:
    return Engine(autoescape=autoescape, string_if_invalid="")


def template_context(*, lead: Lead, client: Client) -> dict[str, dict[str, str]]:
    return {
        "lead": {
            "first_name": lead.first_name,
            "last_name": lead.last_name,
            "full_name": lead.full_name or f"{lead.first_name} {lead.last_name}".strip(),
            "service_type": lead.service_type,
            "city": lead.city,
            "market": lead.market,
            "postal_code": lead.postal_code,
            "status": lead.get_status_display(),
        },
        "client": {"name": client.name, "review_url": client.review_url},
    }


def render(template: str, *, lead: Lead, client: Client, html: bool = False) -> str:
    rendered = (
        _engine(autoescape=html)
        .from_string(template)
        .render(Context(template_context(lead=lead, client=client), autoescape=html))
    )
    return rendered.strip()


def render_email_html(text: str, *, lead: Lead, client: Client) -> str:
    """The email body as HTML: the template escaped, blank lines become paragraphs."""
    body = render(text, lead=lead, client=client, html=True)
    paragraphs = [p.strip().replace("\n", "<br>") for p in body.split("\n\n") if p.strip()]
    return "".join(f"<p>{p}</p>" for p in paragraphs)
