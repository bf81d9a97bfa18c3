"""Incidents (owner, severity, affected clients/connections/workflows, rollback path, the holds
they placed), their timeline, and the heartbeat rows the ops status page reads. Schema only;
every operation is a CreateModel, so the migration reverses by dropping the three tables.

Depends on the first migration of each app it points at (not the latest): it needs the
tables to exist, nothing newer.
"""

import django.db.models.deletion
import django.utils.timezone
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('adminops', '0001_admin_action_log'),
        ('integrations', '0001_connections_and_event_pipeline'),
        ('leads', '0001_clients_leads_timeline_consent'),
        ('workflows', '0001_workflow_definitions_enrollments_and_sends'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name='Heartbeat',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('name', models.CharField(max_length=64, unique=True)),
                ('beat_at', models.DateTimeField()),
            ],
            options={
                'db_table': 'adminops_heartbeats',
            },
        ),
        migrations.CreateModel(
            name='Incident',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('created_at', models.DateTimeField(auto_now_add=True, db_index=True)),
                ('updated_at', models.DateTimeField(auto_now=True)),
                ('title', models.CharField(max_length=200)),
                ('status', models.CharField(choices=[('open', 'Open'), ('investigating', 'Investigating'), ('mitigated', 'Mitigated (impact stopped, not closed)'), ('closed', 'Closed')], default='open', max_length=16)),
                ('severity', models.CharField(choices=[('sev1', 'SEV1 · critical: clients losing leads or messages now'), ('sev2', 'SEV2 · major: a client or provider degraded'), ('sev3', 'SEV3 · minor: a workaround exists'), ('sev4', 'SEV4 · low: cosmetic or internal')], default='sev3', max_length=8)),
                ('summary', models.TextField(blank=True, help_text='What is happening and who notices it.')),
                ('rollback_path', models.TextField(help_text='How to undo or switch off what caused it: which hold, which connection to pause, which workflow version to go back to.')),
                ('sends_held', models.BooleanField(default=False, help_text='The incident holds sends it placed (see holds placed).')),
                ('holds_placed', models.JSONField(blank=True, default=list)),
                ('opened_at', models.DateTimeField(default=django.utils.timezone.now)),
                ('opened_by_label', models.CharField(blank=True, max_length=150)),
                ('closed_at', models.DateTimeField(blank=True, null=True)),
                ('closed_by_label', models.CharField(blank=True, max_length=150)),
                ('resolution', models.TextField(blank=True, help_text='On close: what was done, and what stops it recurring.')),
                ('affected_clients', models.ManyToManyField(blank=True, related_name='incidents', to='leads.client')),
                ('affected_connections', models.ManyToManyField(blank=True, related_name='incidents', to='integrations.connection')),
                ('affected_workflows', models.ManyToManyField(blank=True, related_name='incidents', to='workflows.workflow')),
                ('owner', models.ForeignKey(help_text='The staff member who drives it to closed.', on_delete=django.db.models.deletion.PROTECT, related_name='owned_incidents', to=settings.AUTH_USER_MODEL)),
            ],
            options={
                'db_table': 'adminops_incidents',
                'ordering': ('-opened_at', '-id'),
            },
        ),
        migrations.CreateModel(
            name='IncidentEntry',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('kind', models.CharField(choices=[('opened', 'Opened'), ('status', 'Status change'), ('note', 'Note'), ('owner', 'Owner change'), ('hold', 'Sends held'), ('release', 'Sends released'), ('closed', 'Closed')], max_length=8)),
                ('actor_label', models.CharField(max_length=150)),
                ('message', models.TextField()),
                ('detail', models.JSONField(blank=True, default=dict)),
                ('created_at', models.DateTimeField(default=django.utils.timezone.now)),
                ('action', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.PROTECT, related_name='+', to='adminops.adminaction')),
                ('actor_user', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to=settings.AUTH_USER_MODEL)),
                ('incident', models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='entries', to='adminops.incident')),
            ],
            options={
                'verbose_name_plural': 'incident entries',
                'db_table': 'adminops_incident_entries',
                'ordering': ('incident', 'created_at', 'id'),
            },
        ),
        migrations.AddIndex(
            model_name='incident',
            index=models.Index(fields=['status', 'opened_at'], name='incident_status_opened_idx'),
        ),
        migrations.AddConstraint(
            model_name='incident',
            constraint=models.CheckConstraint(condition=models.Q(('status__in', ['open', 'investigating', 'mitigated', 'closed'])), name='incident_status_valid'),
        ),
        migrations.AddConstraint(
            model_name='incident',
            constraint=models.CheckConstraint(condition=models.Q(('severity__in', ['sev1', 'sev2', 'sev3', 'sev4'])), name='incident_severity_valid'),
        ),
        migrations.AddConstraint(
            model_name='incident',
            constraint=models.CheckConstraint(condition=models.Q(models.Q(('status', 'closed'), _negated=True), models.Q(('closed_at__isnull', False), models.Q(('resolution', ''), _negated=True)), _connector='OR'), name='incident_closed_has_resolution'),
        ),
    ]
