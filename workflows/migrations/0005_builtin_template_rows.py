"""The four built-in templates (the product definition's Workflows sheet) become rows.

The data is frozen here as it was when templates moved into the database, so this migration
gives the same rows whatever workflows/templates.py says later. Reversing removes the built-in
rows (only those, by key).
"""

from django.db import migrations

BUILTINS = [{'key': 'new-lead-follow-up',
  'name': 'New Lead Follow-Up',
  'description': 'Initial confirmation SMS → Day 1 email → Day 3 check-in call reminder → Day 7 re-engage.',
  'steps': [{'key': 'confirm',
             'kind': 'send_sms',
             'name': '',
             'config': {'body': "Hi {{ lead.first_name|default:'there' }}, thanks for contacting {{ "
                                'client.name }}! We got your request and will call you shortly. Reply STOP '
                                'to opt out.'}},
            {'key': 'wait-1d',
             'kind': 'delay',
             'name': '',
             'config': {'duration': {'amount': 1, 'unit': 'days'}}},
            {'key': 'day1-email',
             'kind': 'send_email',
             'name': '',
             'config': {'subject': "Your {{ lead.service_type|default:'service' }} request with {{ "
                                   'client.name }}',
                        'body': "Hi {{ lead.first_name|default:'there' }},\n"
                                '\n'
                                'Thanks for reaching out. Reply to this email or call us to pick a time that '
                                'suits you.\n'
                                '\n'
                                '{{ client.name }}'}},
            {'key': 'wait-2d',
             'kind': 'delay',
             'name': '',
             'config': {'duration': {'amount': 2, 'unit': 'days'}}},
            {'key': 'day3-call',
             'kind': 'create_task',
             'name': '',
             'config': {'title': 'Day 3 check-in call: {{ lead.full_name }}',
                        'due': {'amount': 4, 'unit': 'hours'}}},
            {'key': 'wait-4d',
             'kind': 'delay',
             'name': '',
             'config': {'duration': {'amount': 4, 'unit': 'days'}}},
            {'key': 'day7-reengage',
             'kind': 'send_sms',
             'name': '',
             'config': {'body': "Hi {{ lead.first_name|default:'there' }}, still looking for help with your "
                                "{{ lead.service_type|default:'project' }}? Reply here and we'll get you "
                                'scheduled.'}}]},
 {'key': 'post-job-review',
  'name': 'Post-Job Review Request',
  'description': '24hr SMS with review link → 72hr email fallback → 7-day final ask.',
  'steps': [{'key': 'wait-24h',
             'kind': 'delay',
             'name': '',
             'config': {'duration': {'amount': 24, 'unit': 'hours'}}},
            {'key': 'review-sms',
             'kind': 'send_sms',
             'name': '',
             'config': {'body': "Thanks for choosing {{ client.name }}, {{ lead.first_name|default:'' }}! "
                                'Would you leave us a quick review? {{ client.review_url }}'}},
            {'key': 'wait-reply',
             'kind': 'wait_for_event',
             'name': '',
             'config': {'event': 'sms.replied',
                        'timeout': {'amount': 2, 'unit': 'days'},
                        'yes': 'exit',
                        'no': 'next'}},
            {'key': 'review-email',
             'kind': 'send_email',
             'name': '',
             'config': {'subject': "How did we do, {{ lead.first_name|default:'there' }}?",
                        'body': 'Thanks again for choosing {{ client.name }}. A short review would mean a '
                                'lot to our team:\n'
                                '\n'
                                '{{ client.review_url }}'}},
            {'key': 'wait-4d',
             'kind': 'delay',
             'name': '',
             'config': {'duration': {'amount': 4, 'unit': 'days'}}},
            {'key': 'final-ask',
             'kind': 'send_sms',
             'name': '',
             'config': {'body': "Last note from {{ client.name }}: if you have a minute, we'd love your "
                                'review: {{ client.review_url }}'}}]},
 {'key': 'recurring-service-reminder',
  'name': 'Recurring Service Reminder',
  'description': '30-day advance notice → 14-day confirmation → 2-day reminder → Day-of alert (enroll 30 '
                 'days before the service date).',
  'steps': [{'key': 'notice-30d',
             'kind': 'send_email',
             'name': '',
             'config': {'subject': "Your {{ lead.service_type|default:'service' }} is coming up",
                        'body': "Hi {{ lead.first_name|default:'there' }}, your next service with {{ "
                                'client.name }} is due in about 30 days. Reply to pick a time.'}},
            {'key': 'wait-16d',
             'kind': 'delay',
             'name': '',
             'config': {'duration': {'amount': 16, 'unit': 'days'}}},
            {'key': 'confirm-14d',
             'kind': 'send_sms',
             'name': '',
             'config': {'body': '{{ client.name }}: your service is in 2 weeks. Reply YES to confirm or call '
                                'us to change it.'}},
            {'key': 'wait-12d',
             'kind': 'delay',
             'name': '',
             'config': {'duration': {'amount': 12, 'unit': 'days'}}},
            {'key': 'reminder-2d',
             'kind': 'send_sms',
             'name': '',
             'config': {'body': "Reminder from {{ client.name }}: we'll see you in 2 days."}},
            {'key': 'wait-2d',
             'kind': 'delay',
             'name': '',
             'config': {'duration': {'amount': 2, 'unit': 'days'}}},
            {'key': 'day-of',
             'kind': 'send_sms',
             'name': '',
             'config': {'body': '{{ client.name }}: our technician is on the way today.'}}]},
 {'key': 'payment-overdue',
  'name': 'Payment Overdue Escalation',
  'description': 'Day 1 friendly reminder → Day 7 firm notice → Day 14 final warning → Day 30 collections '
                 'flag. Exits as soon as the invoice is paid.',
  'steps': [{'key': 'day1',
             'kind': 'send_email',
             'name': '',
             'config': {'subject': 'A friendly reminder from {{ client.name }}',
                        'body': "Hi {{ lead.first_name|default:'there' }}, our records show an open invoice. "
                                "If you've already paid, thank you and please ignore this."}},
            {'key': 'wait-6d',
             'kind': 'delay',
             'name': '',
             'config': {'duration': {'amount': 6, 'unit': 'days'}}},
            {'key': 'day7',
             'kind': 'send_email',
             'name': '',
             'config': {'subject': 'Invoice past due: {{ client.name }}',
                        'body': "Hi {{ lead.first_name|default:'there' }}, your invoice is now a week past "
                                'due. Please pay at your earliest convenience.'}},
            {'key': 'wait-7d',
             'kind': 'delay',
             'name': '',
             'config': {'duration': {'amount': 7, 'unit': 'days'}}},
            {'key': 'day14',
             'kind': 'send_sms',
             'name': '',
             'config': {'body': '{{ client.name }}: final notice, your invoice is 14 days past due. Please '
                                'pay or call us to avoid collections.'}},
            {'key': 'wait-16d',
             'kind': 'delay',
             'name': '',
             'config': {'duration': {'amount': 16, 'unit': 'days'}}},
            {'key': 'collections', 'kind': 'update_lead', 'name': '', 'config': {'add_tag': 'collections'}},
            {'key': 'collections-task',
             'kind': 'create_task',
             'name': '',
             'config': {'title': 'Collections review: {{ lead.full_name }}'}}]}]


def add_builtins(apps, schema_editor):
    WorkflowTemplate = apps.get_model("workflows", "WorkflowTemplate")
    for row in BUILTINS:
        WorkflowTemplate.objects.update_or_create(
            key=row["key"],
            defaults={"name": row["name"], "description": row["description"], "steps": row["steps"], "is_builtin": True},
        )


def remove_builtins(apps, schema_editor):
    WorkflowTemplate = apps.get_model("workflows", "WorkflowTemplate")
    WorkflowTemplate.objects.filter(key__in=[row["key"] for row in BUILTINS], is_builtin=True).delete()


class Migration(migrations.Migration):

    dependencies = [
        ("workflows", "0004_workflow_templates"),
    ]

    operations = [
        migrations.RunPython(add_builtins, remove_builtins),
    ]
