"""Name search index-first: (full_name, captured_at) and (last_name, captured_at) replace the
single-column name indexes (leads.selectors.lead_name_prefix_ids). The new ones are added before
the old ones go, so a search always has an index; reversing adds the old ones back first."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("leads", "0004_lead_daily_totals"),
    ]

    operations = [
        migrations.AddIndex(
            model_name="lead",
            index=models.Index(fields=["full_name", "captured_at"], name="lead_full_name_captured_idx"),
        ),
        migrations.AddIndex(
            model_name="lead",
            index=models.Index(fields=["last_name", "captured_at"], name="lead_last_name_captured_idx"),
        ),
        migrations.RemoveIndex(model_name="lead", name="lead_full_name_idx"),
        migrations.RemoveIndex(model_name="lead", name="lead_last_name_idx"),
    ]
