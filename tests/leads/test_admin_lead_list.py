"""The staff lead list (/admin/leads/lead/) stays bounded as the table grows, and still finds leads.

Speed itself is measured in bench/ (bench/portal_scale.py at 1M leads), never asserted here:
these tests pin the properties the speed rests on — a fixed number of queries per page whatever
the number of leads, no per-row queries, no `%term%` scans, no facet counts — and that the
filters, search and later pages return the right leads.
"""

import datetime

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from leads.models import Lead
from tests import factories

pytestmark = pytest.mark.django_db

URL = "/admin/leads/lead/"


def _make_leads(n: int, *, clients, owners, start: int = 0) -> list[Lead]:
    """n leads over several clients and owners (so per-row lookups would show), one minute apart."""
    base = timezone.now() - datetime.timedelta(days=3)
    return [
        factories.LeadFactory(
            client=clients[i % len(clients)],
            owner=owners[i % len(owners)],
            captured_at=base + datetime.timedelta(minutes=i),
            phone_raw=f"+1512555{i:04d}",
        )
        for i in range(start, start + n)
    ]


def _queries(client, params=None) -> CaptureQueriesContext:
    with CaptureQueriesContext(connection) as ctx:
        assert client.get(URL, params or {}).status_code == 200
    return ctx


@pytest.fixture
def staff(client, data_ops_user):
    client.force_login(data_ops_user)
    return data_ops_user


def test_query_count_is_the_same_for_5_and_50_leads(client, staff, acme, other_client, django_assert_max_num_queries):
    owners = [staff, factories.DataOpsUserFactory(), None]
    third = factories.ClientFactory(name="Third Roofing", slug="third")
    clients = [acme, other_client, third]
    _make_leads(5, clients=clients, owners=owners)
    few = _queries(client)

    _make_leads(45, clients=clients, owners=owners, start=5)
    with django_assert_max_num_queries(len(few)) as many:
        response = client.get(URL)
    assert len(response.context["cl"].result_list) == 50
    assert len(many) == len(few)
    sql = " ".join(q["sql"].upper() for q in many.captured_queries)
    assert "DISTINCT" not in sql  # no DISTINCT over the leads for filters or the date hierarchy
    counts = [q["sql"].upper() for q in many.captured_queries if "COUNT(" in q["sql"].upper()]
    assert counts and all("LIMIT" in q for q in counts), counts  # only capped counts, no COUNT(*) of the table


def test_a_later_page_costs_one_query_more_and_keeps_the_order(
    client, staff, acme, other_client, django_assert_max_num_queries
):
    leads = _make_leads(5, clients=[acme, other_client], owners=[staff, None])
    first_page = _queries(client)
    leads += _make_leads(115, clients=[acme, other_client], owners=[staff, None], start=5)
    newest_first = sorted(leads, key=lambda lead: (lead.captured_at, lead.pk), reverse=True)

    with django_assert_max_num_queries(len(first_page) + 1):
        response = client.get(URL, {"p": 2})
    assert list(response.context["cl"].result_list) == newest_first[50:100]
    assert list(client.get(URL, {"p": 3}).context["cl"].result_list) == newest_first[100:]
    assert list(client.get(URL).context["cl"].result_list) == newest_first[:50]
    # A later page of a filtered, re-sorted list (o: list_display positions after the checkbox
    # column, 6 = status, 10 = captured_at): the ids query carries the filter and the sort.
    mine = [lead for lead in leads if lead.client_id == acme.pk]  # 60 leads
    by_status = sorted(mine, key=lambda lead: (lead.status, lead.captured_at, lead.pk))
    page2 = client.get(URL, {"client__id__exact": acme.pk, "o": "6.10", "p": 2}).context["cl"].result_list
    assert {lead.pk for lead in page2} == {lead.pk for lead in by_status[50:]}


def test_filters_find_the_right_leads(client, staff, acme, other_client):
    target = factories.LeadFactory(
        client=acme,
        owner=staff,
        status=Lead.Status.LOST,
        lost_reason=Lead.LostReason.PRICE,
        source="thumbtack",
        urgency="emergency",
        market="Round Rock",
        has_data_quality_issues=True,
        captured_at=timezone.now() - datetime.timedelta(days=400),
    )
    factories.LeadFactory(client=other_client, owner=None, market="Denver")
    factories.LeadFactory(client=acme, owner=None, status=Lead.Status.CONTACTED, urgency="low")
    acme.markets = ["Austin", "Round Rock"]
    acme.save(update_fields=["markets"])
    year = timezone.localtime(target.captured_at).year
    for params in [
        {"status__exact": "lost"},
        {"source__exact": "thumbtack"},
        {"urgency__exact": "emergency"},
        {"market": "Round Rock"},
        {"owner": "me"},
        {"has_data_quality_issues__exact": "1"},
        {"client__id__exact": acme.pk, "status__exact": "lost"},
        {"captured_at__year": year, "urgency__exact": "emergency"},
    ]:
        assert list(client.get(URL, params).context["cl"].result_list) == [target], params
    assert len(client.get(URL, {"owner": "none"}).context["cl"].result_list) == 2


def test_search_finds_by_phone_email_and_name_prefix_without_infix_scans(client, staff, acme):
    target = factories.LeadFactory(
        client=acme,
        first_name="Maria",
        last_name="Garcia",
        phone_raw="(512) 555-0143",
        phone_e164="+15125550143",
        email_raw="Maria.Garcia@Gmail.com",
        email_normalized="maria.garcia@gmail.com",
    )
    factories.LeadFactory(client=acme, first_name="Bob", last_name="Smith")
    for term in ["512.555.0143", "+1 512 555 0143", "MARIA.GARCIA@gmail.com", "Mari", "garc", "Maria Gar"]:
        with CaptureQueriesContext(connection) as ctx:
            result = list(client.get(URL, {"q": term}).context["cl"].result_list)
        assert result == [target], term
        sql = " ".join(q["sql"] for q in ctx.captured_queries)
        assert "LIKE '%" not in sql and "LIKE %" not in sql.replace("LIKE %s", ""), term  # no leading wildcard


def test_facet_counts_are_not_offered(client, staff, acme):
    factories.LeadFactory.create_batch(3, client=acme)
    plain = _queries(client)
    with_facets = _queries(client, {"_facets": "True"})
    assert len(with_facets) == len(plain)
    assert "Show counts" not in client.get(URL).content.decode()


def test_only_indexed_columns_sort_even_when_asked_in_the_url(client, staff, acme):
    """o=4 (email) is not offered as a header; a typed URL must not make it a 1M-row filesort."""
    factories.LeadFactory.create_batch(3, client=acme)
    response = client.get(URL, {"o": "4"})
    assert response.status_code == 200
    assert list(response.context["cl"].queryset.query.order_by) == ["-captured_at", "-id"]


def test_date_hierarchy_links_come_from_the_period_not_from_the_filtered_rows(client, staff, acme):
    old = factories.LeadFactory(
        client=acme, urgency="emergency", captured_at=timezone.now() - datetime.timedelta(days=400)
    )
    factories.LeadFactory(client=acme, urgency="low")
    ctx = _queries(client, {"urgency__exact": "emergency", "source__exact": "web_form"})
    bounds = [q["sql"] for q in ctx.captured_queries if "MIN(" in q["sql"].upper()]
    assert bounds and not any("urgency" in sql.lower() for sql in bounds)  # index probes, not a scan
    # Drilling into the old lead's year still lists exactly it.
    year = timezone.localtime(old.captured_at).year
    params = {"urgency__exact": "emergency", "captured_at__year": year}
    assert list(client.get(URL, params).context["cl"].result_list) == [old]


# --- name search, index-first (leads.selectors.lead_name_prefix_ids) --------------------------------


@pytest.fixture
def named_leads(acme, other_client):
    """Leads whose full or last name starts with "Herr" (some both), and near misses, with ties
    on captured_at so the id tie-break shows."""
    base = timezone.now() - datetime.timedelta(days=10)
    names = [
        ("Herr", "Schmidt"),  # full name only
        ("Anna", "Herrera"),  # last name only
        ("Herman", "Herrmann"),  # last name only ("Herman Herrmann" is not "Herr…")
        ("Herrick", "Herrington"),  # both: listed once
        ("Sherry", "Oherr"),  # infix only: not a prefix match
        ("Hera", "Smith"),  # "Her", not "Herr"
        ("", "HERRON"),  # case-insensitive
    ]
    leads = []
    for i in range(126):
        first, last = names[i % len(names)]
        leads.append(
            factories.LeadFactory(
                client=(acme, other_client)[i % 2],
                first_name=first,
                last_name=last,
                captured_at=base + datetime.timedelta(minutes=(i * 37) % 90),  # out of id order, with ties
            )
        )
    return leads


def _newest_first(leads):
    return sorted(leads, key=lambda lead: (lead.captured_at, lead.pk), reverse=True)


def _herr(lead) -> bool:
    return lead.full_name.lower().startswith("herr") or lead.last_name.lower().startswith("herr")


def test_name_prefix_search_lists_the_right_leads_newest_first_page_by_page(client, staff, named_leads):
    expected = _newest_first([lead for lead in named_leads if _herr(lead)])
    assert len(expected) == 90 and len({lead.pk for lead in expected}) == 90

    page1 = client.get(URL, {"q": "Herr"}).context["cl"]
    assert page1.result_count == 90
    assert list(page1.result_list) == expected[:50]
    page2 = client.get(URL, {"q": "herr", "p": 2}).context["cl"]
    assert list(page2.result_list) == expected[50:]
    # A longer prefix narrows it; the near misses never match.
    assert list(client.get(URL, {"q": "Herre"}).context["cl"].result_list) == _newest_first(
        [lead for lead in named_leads if lead.last_name == "Herrera"]
    )


def test_name_search_takes_the_ids_from_the_name_indexes_then_the_page_by_id(client, staff, named_leads):
    plain = _queries(client)
    searched = _queries(client, {"q": "Herr"})
    later = _queries(client, {"q": "Herr", "p": 2})
    assert len(searched) <= len(plain) and len(later) == len(searched)
    ids = [q["sql"] for q in searched.captured_queries if "UNION" in q["sql"].upper()]
    assert len(ids) == 1, [q["sql"] for q in searched.captured_queries]
    select_list = ids[0].upper().split("FROM")[0]
    # Only the indexed columns: (captured_at, id) are in both name indexes, no row is needed.
    assert "CAPTURED_AT" in select_list and "PHONE" not in select_list and "FULL_NAME" not in select_list
    # No separate COUNT over the matching rows: the ids are the capped count.
    assert not [q for q in searched.captured_queries if "COUNT(" in q["sql"].upper() and "LEADS_LEAD" in q["sql"]]


def test_name_search_with_a_filter_or_another_sort_still_finds_the_right_leads(client, staff, acme, named_leads):
    mine = [lead for lead in named_leads if _herr(lead) and lead.client_id == acme.pk]
    cl = client.get(URL, {"q": "Herr", "client__id__exact": acme.pk}).context["cl"]
    assert list(cl.result_list) == _newest_first(mine) and cl.result_count == len(mine)
    by_status = client.get(URL, {"q": "Herr", "o": "6.10"}).context["cl"]  # status, then captured_at
    assert by_status.result_count == 90
    assert {lead.pk for lead in by_status.result_list} <= {lead.pk for lead in named_leads if _herr(lead)}
    assert [lead.status for lead in by_status.result_list] == sorted(lead.status for lead in by_status.result_list)


def test_lead_name_prefix_ids_is_capped_and_ordered(named_leads):
    from leads.selectors import lead_name_prefix_ids

    expected = [lead.pk for lead in _newest_first([lead for lead in named_leads if _herr(lead)])]
    assert lead_name_prefix_ids(Lead.objects.all(), "Herr", limit=1000) == expected
    assert lead_name_prefix_ids(Lead.objects.all(), "HERR", limit=11) == expected[:11]
    assert (
        lead_name_prefix_ids(Lead.objects.all(), "Oherr", limit=10)
        == [lead.pk for lead in _newest_first([lead for lead in named_leads if lead.last_name == "Oherr"])][:10]
    )
    assert lead_name_prefix_ids(Lead.objects.all(), "Zzz", limit=10) == []
