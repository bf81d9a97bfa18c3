"""Per-(client, day) totals beside the daily rollups (leads.models_rollups.LeadDailyTotal).

Schema only: the totals are filled by leads.rollups (`manage.py refresh_rollups --full`, or the
beat task, which refreshes in full every client whose state says has_day_totals=False).
"""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("leads", "0003_lead_daily_rollups"),
    ]

    operations = [
        migrations.CreateModel(
            name="LeadDailyTotal",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("day", models.DateField(help_text="Capture day in the client's time zone.")),
                ("leads", models.PositiveIntegerField(default=0, help_text="Counted leads (spam/duplicate excluded).")),
                (
                    "excluded",
                    models.PositiveIntegerField(default=0, help_text="Leads marked lost as spam or duplicate."),
                ),
                ("responded", models.PositiveIntegerField(default=0)),
                ("response_seconds_sum", models.BigIntegerField(default=0)),
                ("booked", models.PositiveIntegerField(default=0)),
                (
                    "lost_by_reason",
                    models.JSONField(blank=True, default=dict, help_text='{"price": 2, …}: counted lost leads.'),
                ),
                ("with_source_and_attribution", models.PositiveIntegerField(default=0)),
                ("next_actions_open", models.PositiveIntegerField(default=0)),
                ("response_histogram", models.JSONField(blank=True, default=list)),
                (
                    "leads_by_source",
                    models.JSONField(blank=True, default=dict, help_text='{"web_form": 12, …}: counted leads.'),
                ),
                (
                    "leads_by_service",
                    models.JSONField(
                        blank=True,
                        default=dict,
                        help_text='{"Drain cleaning": 3, "": 1, …}: counted leads ("" = not stated).',
                    ),
                ),
                ("refreshed_at", models.DateTimeField()),
                (
                    "client",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE, related_name="+", to="leads.client"
                    ),
                ),
            ],
            options={
                "constraints": [
                    models.UniqueConstraint(fields=("client", "day"), name="lead_total_unique_client_day"),
                ],
            },
        ),
        migrations.AddField(
            model_name="leadrollupclientstate",
            name="has_day_totals",
            field=models.BooleanField(default=False),
        ),
    ]
