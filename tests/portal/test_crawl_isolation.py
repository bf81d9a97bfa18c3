"""Isolation crawl: everything client A's portal user can reach shows nothing of client B and
nothing internal.

Two clients, each with leads, activities (call transcripts, internal notes), raw provider events
(through the real Twilio adapter and drain; a sentinel in a payload field nothing should copy),
workflows, rules, and published + unpublished summaries and metric cards whose internal fields
carry sentinels. Logged in as A's portal user, the crawler

- starts at the portal's root and follows every same-site link and GET form under it;
- resolves every URL pattern in portal.urls (found at run time, nested includes too) with A's and
  B's object ids, the values seen while crawling and a few generic candidates;
- calls every /api/v1/ route (found at run time from zartsalgo.api_urls) with A's token: lists
  (all pages, and filtered by B's client id) and details with A's and B's ids.

No response may contain a B value (names, phones, emails, titles, labels) or any internal or
raw-payload sentinel; B's objects answer 404. Nothing here names a portal page: pages added
later are crawled as soon as something links to them or portal.urls lists them.
"""

from __future__ import annotations

import datetime
import itertools
import re
from collections import defaultdict, deque
from html.parser import HTMLParser
from urllib.parse import urlencode, urljoin, urlsplit

import pytest
from django.contrib.auth.tokens import default_token_generator
from django.db import transaction
from django.test import RequestFactory
from django.urls import NoReverseMatch, URLPattern, URLResolver, get_resolver, resolve, reverse
from django.urls.exceptions import Resolver404
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_encode
from rest_framework.request import Request
from rest_framework.test import APIClient

import portal.urls
import zartsalgo.api_urls
from integrations.models import NormalizedEvent
from integrations.providers.base import ParsedEvent
from integrations.services import raw_events_store
from leads.models import Activity, Lead
from portal.services import client_user_create
from tests import factories
from tests.api.conftest import token_client
from tests.portal.helpers import publish
from workflows import rules
from workflows import services as wf

pytestmark = pytest.mark.django_db

ACTOR = "system:test"
MAX_PAGES = 400  # a runaway crawl fails loudly instead of running for ever
ID_PARAM = re.compile(r"^(pk|id|.+_id|.+_pk)$")


# --- the two tenants ----------------------------------------------------------------------------------


def _tenant(tag: str, *, name: str, slug: str, people, phone: str, period, approver, capture) -> dict:
    """One client with everything a portal user must (A) or must never (B) reach.

    `people`: (first, last, phone, email) of its leads. Every internal field carries a sentinel
    ending in the tag, so a leak says whose and which field.
    """
    client = factories.ClientFactory(name=name, slug=slug, time_zone="America/Chicago")
    t: dict = {
        "tag": tag,
        "client": client,
        "values": [name],
        "internal": [],
        "ids": defaultdict(set),
        "periods": [period],
    }
    leads = []
    for first, last, lead_phone, email in people:
        lead = factories.LeadFactory(
            client=client,
            first_name=first,
            last_name=last,
            phone_raw=lead_phone,
            phone_e164=lead_phone,
            email_raw=email,
            email_normalized=email,
            captured_at=datetime.datetime.combine(period[0], datetime.time(12), tzinfo=client.tz),
        )
        leads.append(lead)
        t["values"] += [first, last, lead_phone, lead_phone.removeprefix("+1"), email]
        for kind, body in (("call_inbound", "TRANSCRIPT"), ("note", "INTERNAL-NOTE")):
            factories.ActivityFactory(
                lead=lead,
                kind=kind,
                summary=f"{kind} for the test",
                body=f"{body}-SENTINEL-{tag} caller said the gate code is 4417",
                is_internal=True,
                data={"transcript": f"ACTIVITY-DATA-SENTINEL-{tag}"},
            )
    t["internal"] += [f"TRANSCRIPT-SENTINEL-{tag}", f"INTERNAL-NOTE-SENTINEL-{tag}", f"ACTIVITY-DATA-SENTINEL-{tag}"]

    # A raw delivery through the real adapter and drain: FromCity is in the payload only.
    connection = factories.ConnectionFactory(client=client, provider="twilio", reason=f"Texts for {name}")
    sid = f"SM{tag.lower()}{'0' * 31}"[:34]
    form = {
        "MessageSid": sid,
        "SmsMessageSid": sid,
        "AccountSid": "AC" + "1" * 32,
        "From": phone,
        "To": "+15125550100",
        "Body": f"SMS-BODY-SENTINEL-{tag} please call me back",
        "NumMedia": "0",
        "FromCity": f"RAW-PAYLOAD-SENTINEL-{tag}",
    }
    with capture(execute=True), transaction.atomic():
        raw_events_store(
            connection=connection,
            receipt=None,
            events=[ParsedEvent(idempotency_key=sid, kind="sms.inbound", payload=form, summary="SMS from +1•••")],
        )
    t["values"] += [phone, phone.removeprefix("+1")]
    t["internal"] += [f"RAW-PAYLOAD-SENTINEL-{tag}"]
    assert NormalizedEvent.objects.filter(client=client, event_type="sms.received").exists(), "drain did not run"

    # Proof: published and unpublished, internal fields full of sentinels.
    start, end = period
    proof = {
        "client": client,
        "period_start": start,
        "period_end": end,
    }
    published_summary = factories.SummaryFactory(
        **proof,
        title=f"Summary title {tag}-PUBLISHED",
        body=f"Summary body {tag}-PUBLISHED",
        internal_draft=f"INTERNAL-DRAFT-SENTINEL-{tag}",
        evidence={"why": f"EVIDENCE-SENTINEL-{tag}"},
    )
    draft_summary = factories.SummaryFactory(
        **proof,
        title=f"Summary title {tag}-UNPUBLISHED",
        body=f"Summary body {tag}-UNPUBLISHED",
        internal_draft=f"INTERNAL-DRAFT-SENTINEL-{tag}",
    )
    published_card = factories.MetricCardFactory(
        **proof,
        metric_label=f"Card label {tag}-PUBLISHED",
        connection=connection,
        internal_notes=f"CARD-NOTE-SENTINEL-{tag}",
        evidence={"why": f"EVIDENCE-SENTINEL-{tag}"},
    )
    draft_card = factories.MetricCardFactory(
        **proof, metric_label=f"Card label {tag}-UNPUBLISHED", internal_notes=f"CARD-NOTE-SENTINEL-{tag}"
    )
    for item in (published_summary, published_card):
        publish(item, approver, override_reason=f"OVERRIDE-SENTINEL-{tag}")
    t["internal"] += [
        f"INTERNAL-DRAFT-SENTINEL-{tag}",
        f"EVIDENCE-SENTINEL-{tag}",
        f"CARD-NOTE-SENTINEL-{tag}",
        f"OVERRIDE-SENTINEL-{tag}",
        f"{tag}-UNPUBLISHED",
    ]
    t["values"] += [f"{tag}-PUBLISHED"]

    # Workflows, an enrollment with a step run, a rule.
    workflow = wf.workflow_create(client=client, name=f"Workflow {tag}-WF", actor=ACTOR)
    wf.step_add(workflow=workflow, kind="create_task", key="call", config={"title": f"Task {tag}-STEP"}, actor=ACTOR)
    wf.workflow_publish(workflow=workflow, actor=ACTOR)
    enrollment = wf.enrollment_create(workflow=workflow, lead=leads[0], actor=ACTOR, run_now=False)
    run = enrollment.step_runs.create(
        client=client, step_key="call", step_kind="create_task", visit=0, state="succeeded"
    )
    rule = rules.rule_create(
        client=client, actor=ACTOR, name=f"Rule {tag}-RULE", event_type="lead.captured", workflow=workflow
    )
    t["values"] += [f"{tag}-WF", f"{tag}-STEP", f"{tag}-RULE"]

    for obj in (
        *Lead.objects.filter(client=client),
        *Activity.objects.filter(client=client),
        *NormalizedEvent.objects.filter(client=client),
        connection,
        client,
        published_summary,
        draft_summary,
        published_card,
        draft_card,
        workflow,
        enrollment,
        run,
        rule,
    ):
        t["ids"][type(obj)].add(obj.pk)
    t["unpublished"] = {type(draft_summary): {draft_summary.pk}, type(draft_card): {draft_card.pk}}
    t["published"] = {type(published_summary): {published_summary.pk}, type(published_card): {published_card.pk}}
    return t


@pytest.fixture
def tenants(django_capture_on_commit_callbacks):
    approver = factories.DataOpsUserFactory(email="approver-SENTINEL@agency.example")
    today = datetime.date.today()
    a = _tenant(
        "AAA",
        name="Alderbrook Plumbing",
        slug="alderbrook",
        people=[
            ("Alfreda", "Applewhite", "+15125550111", "alfreda.applewhite@example.com"),
            ("Anselm", "Ashcombe", "+15125550112", "anselm.ashcombe@example.com"),
        ],
        phone="+15125550113",
        period=(today - datetime.timedelta(days=10), today - datetime.timedelta(days=1)),
        approver=approver,
        capture=django_capture_on_commit_callbacks,
    )
    b = _tenant(
        "BBB",
        name="Bexleyvale Roofing",
        slug="bexleyvale",
        people=[
            ("Bartholomew", "Zzyzxwood", "+13035550191", "bartholomew.zzyzxwood@example.com"),
            ("Bronwyn", "Quarrington", "+13035550192", "bronwyn.quarrington@example.com"),
        ],
        phone="+13035550193",
        # A period of B's own: its report URL is a B object too.
        period=(today - datetime.timedelta(days=45), today - datetime.timedelta(days=31)),
        approver=approver,
        capture=django_capture_on_commit_callbacks,
    )
    a["user"] = client_user_create(
        client=a["client"], email="owner@alderbrook.example", password="pw-test-123456", actor=ACTOR
    ).user
    b["user"] = client_user_create(
        client=b["client"], email="owner@bexleyvale.example", password="pw-test-123456", actor=ACTOR
    ).user
    return a, b, approver


def forbidden_for_a(a: dict, b: dict, approver) -> list[str]:
    # A's SMS text is not here: test_message_text_copied_from_raw_payloads_never_reaches_a_client_user.
    return [*b["values"], *b["internal"], *a["internal"], f"SMS-BODY-SENTINEL-{b['tag']}", approver.email]


def check_clean(url: str, response, forbidden: list[str]) -> None:
    assert response.status_code < 500, f"{url} answered {response.status_code}"
    body = response.content.decode("utf-8", errors="replace")
    found = [value for value in forbidden if value.casefold() in body.casefold()]
    assert not found, f"{url} ({response.status_code}) shows {found}"


# --- discovering URLs ---------------------------------------------------------------------------------


class _Page(HTMLParser):
    """Same-site targets of a page: links, and GET forms filled with their default values."""

    def __init__(self):
        super().__init__()
        self.links: list[str] = []
        self.forms: list[dict] = []
        self._select: str | None = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag in ("a", "area") and a.get("href"):
            self.links.append(a["href"])
        elif tag == "form":
            self.forms.append({"method": (a.get("method") or "get").lower(), "action": a.get("action"), "fields": {}})
        elif self.forms and tag in ("input", "button") and a.get("name"):
            kind = (a.get("type") or "text").lower()
            if kind in ("checkbox", "radio") and "checked" not in a:
                return
            if kind not in ("submit", "button", "image", "reset", "file"):
                self.forms[-1]["fields"].setdefault(a["name"], a.get("value") or "")
        elif self.forms and tag == "select" and a.get("name"):
            self._select = a["name"]
        elif self.forms and tag == "option" and self._select:
            fields = self.forms[-1]["fields"]
            if "selected" in a or self._select not in fields:
                fields[self._select] = a.get("value", "")
        elif self.forms and tag == "textarea" and a.get("name"):
            self.forms[-1]["fields"].setdefault(a["name"], "")

    def handle_endtag(self, tag):
        if tag == "select":
            self._select = None


def _prefix_of(urlconf_module) -> str:
    """Where an URLconf module is included in the root URLconf ("/portal/")."""
    for entry in get_resolver().url_patterns:
        if isinstance(entry, URLResolver) and entry.urlconf_module is urlconf_module:
            return "/" + str(entry.pattern)
    raise AssertionError(f"{urlconf_module.__name__} is not included in the root URLconf")


def _patterns(entries, namespace: str):
    """(qualified name or None, [parameter names], URLPattern) for every pattern, includes too."""
    for entry in entries:
        if isinstance(entry, URLResolver):
            ns = f"{namespace}:{entry.namespace}" if entry.namespace else namespace
            inner = list(_patterns(entry.url_patterns, ns))
            outer = list(entry.pattern.regex.groupindex)
            for name, params, pattern in inner:
                yield name, [*outer, *params], pattern
        elif isinstance(entry, URLPattern):
            params = list(entry.pattern.regex.groupindex) or list(getattr(entry.pattern, "converters", {}))
            yield (f"{namespace}:{entry.name}" if entry.name else None), params, entry


def _same_site_path(current: str, target: str, prefix: str) -> str | None:
    url = urlsplit(urljoin(f"http://testserver{current}", target))
    if url.scheme not in ("http", "https") or url.netloc != "testserver" or not url.path.startswith(prefix):
        return None
    return url.path + (f"?{url.query}" if url.query else "")


def _url_name(path: str) -> str | None:
    try:
        match = resolve(urlsplit(path).path)
    except Resolver404:
        return None
    return match.view_name


def crawl_portal(http, prefix: str, forbidden: list[str]) -> dict[str, dict[str, set]]:
    """BFS over the portal from its root; returns {url name: {param: values seen}}."""
    seen_values: dict[str, dict[str, set]] = defaultdict(lambda: defaultdict(set))
    queue, visited = deque([prefix]), set()
    while queue:
        path = queue.popleft()
        if path in visited:
            continue
        name = _url_name(path)
        if name and "logout" in name:
            continue  # would end the session the rest of the crawl needs
        visited.add(path)
        assert len(visited) <= MAX_PAGES, f"more than {MAX_PAGES} portal URLs: {sorted(visited)[:20]}…"
        response = http.get(path)
        check_clean(path, response, forbidden)
        try:
            match = resolve(urlsplit(path).path)
            for key, value in match.kwargs.items():
                seen_values[match.view_name][key].add(str(value))
        except Resolver404:
            pass
        targets: list[str] = []
        if response.status_code in (301, 302, 303, 307, 308):
            targets.append(response["Location"])
        elif "html" in response.get("Content-Type", ""):
            page = _Page()
            page.feed(response.content.decode("utf-8", errors="replace"))
            targets += page.links
            for form in page.forms:
                if form["method"] == "get":
                    action = form["action"] or path.split("?")[0]
                    targets.append(f"{action}?{urlencode(form['fields'])}" if form["fields"] else action)
        for target in targets:
            found = _same_site_path(path, target, prefix)
            if found and found not in visited:
                queue.append(found)
    assert prefix in visited and len(visited) > 1, f"the crawl found nothing beyond {sorted(visited)}"
    return seen_values


# --- the tests ------------------------------------------------------------------------------------------


def _all_ids(t: dict) -> set[int]:
    return set().union(*t["ids"].values())


def test_portal_crawl_shows_client_a_nothing_of_b_and_nothing_internal(client, tenants):
    a, b, approver = tenants
    forbidden = forbidden_for_a(a, b, approver)
    client.force_login(a["user"])
    prefix = _prefix_of(portal.urls)

    seen = crawl_portal(client, prefix, forbidden)

    # Every pattern of portal.urls, with A's and B's ids and every value the crawl saw.
    a_ids, b_ids = _all_ids(a), _all_ids(b)
    only_b = b_ids - a_ids  # an id A owns in some table may legitimately answer 200 elsewhere
    a_unpublished = set().union(*a["unpublished"].values()) - set().union(*a["published"].values())

    def periods(t):
        return {f"{s.isoformat()}--{e.isoformat()}" for s, e in t["periods"]} | {s.isoformat() for s, _ in t["periods"]}

    generic = {a["client"].slug, b["client"].slug, *periods(a), *periods(b)}
    uids = {urlsafe_base64_encode(force_bytes(u.pk)) for u in (a["user"], b["user"], approver)}
    unreached, requested = [], 0
    for name, params, _ in _patterns(portal.urls.urlpatterns, portal.urls.app_name):
        if name is None or "logout" in name:
            continue
        candidates = []
        for param in params:
            if ID_PARAM.match(param):
                candidates.append(sorted(a_ids | b_ids))
            elif param == "uidb64":
                candidates.append(sorted(uids))
            elif param == "token":
                candidates.append(["bogus-token", default_token_generator.make_token(approver)])
            else:
                candidates.append(sorted(seen.get(name, {}).get(param, set()) | generic))
        reached = False
        for values in itertools.islice(itertools.product(*candidates), 500):
            try:
                url = reverse(name, kwargs=dict(zip(params, values, strict=True)))
            except NoReverseMatch:
                continue
            reached = True
            requested += 1
            response = client.get(url)
            check_clean(url, response, forbidden)
            id_values = {int(v) for p, v in zip(params, values, strict=True) if ID_PARAM.match(p)}
            if id_values & (only_b | a_unpublished):
                assert response.status_code == 404, f"{url}: B's or an unpublished object answered {response}"
            if b["client"].slug in values or any(p in values for p in periods(b) - periods(a)):
                assert response.status_code in (302, 404), f"{url}: a B-only value answered {response}"
        if not reached:
            unreached.append(name)
    assert not unreached, f"portal URL patterns the crawl could not build a URL for: {unreached}"
    assert requested > 0


def _view_model(pattern: URLPattern, user):
    """The model behind a DRF view's queryset, as the caller would see it (None if it has none)."""
    view_class = getattr(pattern.callback, "cls", None) or getattr(pattern.callback, "view_class", None)
    if view_class is None or not hasattr(view_class, "get_queryset"):
        return None
    view = view_class()
    request = Request(RequestFactory().get("/"))
    request.user = user
    view.request, view.kwargs, view.format_kwarg = request, {}, None
    try:
        return view.get_queryset().model
    except Exception:
        return None


def _allows_get(pattern: URLPattern) -> bool:
    view_class = getattr(pattern.callback, "cls", None) or getattr(pattern.callback, "view_class", None)
    return view_class is not None and hasattr(view_class, "get")


def test_api_crawl_with_a_token_shows_client_a_nothing_of_b_and_nothing_internal(tenants):
    a, b, approver = tenants
    forbidden = forbidden_for_a(a, b, approver)
    api: APIClient = token_client(a["user"])
    prefix = _prefix_of(zartsalgo.api_urls)
    templates = api.get(f"{prefix}templates/?page_size=200").json().get("results", [])
    keys = sorted({"call", *(t["key"] for t in templates if "key" in t)})
    checked_404 = 0
    for name, params, pattern in _patterns(zartsalgo.api_urls.urlpatterns, zartsalgo.api_urls.app_name):
        if not params:
            url = reverse(name)
            pages = 0
            next_url = f"{url}?page_size=200"
            while next_url and pages < 20:
                response = api.get(next_url)
                check_clean(next_url, response, forbidden)
                body = response.json() if response.status_code == 200 else {}
                next_url = body.get("next") if isinstance(body, dict) else None
                pages += 1
            response = api.get(f"{url}?client={b['client'].pk}")
            check_clean(f"{url}?client=B", response, forbidden)
            body = response.json() if response.status_code == 200 else {}
            rows = body.get("results", []) if isinstance(body, dict) else []
            assert not [r for r in rows if r.get("client") == b["client"].pk], f"{url}?client=B lists B's rows"
            continue
        model = _view_model(pattern, a["user"])
        pk_values = sorted(_all_ids(a) | _all_ids(b)) if model is None else sorted(a["ids"][model] | b["ids"][model])
        for values in itertools.product(*[pk_values if p == "pk" else keys for p in params]):
            kwargs = dict(zip(params, values, strict=True))
            try:
                url = reverse(name, kwargs=kwargs)
            except NoReverseMatch:
                continue
            response = api.get(url)
            check_clean(url, response, forbidden)
            # Without a known model, an id of B that A has in no table at all must be unknown too.
            b_here = b["ids"][model] if model is not None else _all_ids(b) - _all_ids(a)
            if kwargs.get("pk") in b_here:
                expected = 404 if _allows_get(pattern) else 405
                assert response.status_code == expected, f"{url}: B's object {kwargs} answered {response}"
                checked_404 += 1
            if model is not None and kwargs.get("pk") in a.get("unpublished", {}).get(model, set()):
                assert response.status_code == 404, f"{url}: A's unpublished {model.__name__} answered {response}"
    assert checked_404 >= 10, "the crawl reached too few of B's objects to mean anything"


def test_message_text_copied_from_raw_payloads_never_reaches_a_client_user(tenants):
    a, _, _ = tenants
    api = token_client(a["user"])
    response = api.get("/api/v1/normalized-events/?event_type=sms.received")
    assert response.status_code == 200 and response.json()["results"], "no sms.received event to check"
    assert "SMS-BODY-SENTINEL-AAA" not in response.content.decode()
    # The named, client-safe fields are still there: the body is dropped, not the event.
    assert {item["data"].get("summary") for item in response.json()["results"]} == {"SMS received"}
