"""Role definitions in code: the single source of what each group may do.

- Engineers are superusers (they run commands and migrations; no group needed).
- Data ops staff are `is_staff` users in the "Data ops" group, which has exactly the
  permissions below — no deletes of leads or log rows, because traceability depends on them.
- Client portal users are not staff; they reach only the portal, scoped to the one client of
  their `portal.ClientUser` link.
"""

from django.apps import apps as django_apps
from django.contrib.auth.management import create_permissions
from django.contrib.auth.models import Group, Permission
from django.db import transaction

DATA_OPS_GROUP = "Data ops"
PAYLOAD_REVIEWERS_GROUP = "Raw payload reviewers"

ROLE_PERMISSIONS: dict[str, tuple[str, ...]] = {
    DATA_OPS_GROUP: (
        # Owner pickers and "my leads" need to list staff users.
        "auth.view_user",
        # Client settings that data ops own: quiet hours, markets, service catalog, status.
        "leads.view_client",
        "leads.change_client",
        "leads.view_lead",
        "leads.add_lead",
        "leads.change_lead",
        "leads.view_activity",
        "leads.add_activity",
        "leads.view_consent",
        "adminops.view_adminaction",
        # Incidents: data ops open, own and close them (through the services: every step logged);
        # never delete one, and the timeline is written only by those services.
        "adminops.view_incident",
        "adminops.add_incident",
        "adminops.change_incident",
        "adminops.view_incidententry",
        "portal.view_clientuser",
        # Client-facing proof: data ops draft, check, approve, publish and retract summaries and
        # metric cards (add/change; every step goes through portal.services and is logged, and
        # approval takes a named staff user). Check runs are read-only history; nothing is deleted.
        "portal.view_summary",
        "portal.add_summary",
        "portal.change_summary",
        "portal.view_metriccard",
        "portal.add_metriccard",
        "portal.change_metriccard",
        "portal.view_checkrun",
        # Provider pipeline: connections, deliveries, events, failure review (replay = change).
        "integrations.view_connection",
        "integrations.change_connection",
        "integrations.view_webhookevent",
        "integrations.view_rawevent",
        "integrations.change_rawevent",
        "integrations.view_normalizedevent",
        "integrations.view_syncerror",
        "integrations.change_syncerror",
        # CSV imports: upload a file and watch its job.
        "integrations.view_importjob",
        "integrations.add_importjob",
        # Workflows: build, publish, enroll, release holds; no deletes (history stays; unenroll).
        "workflows.view_workflow",
        "workflows.add_workflow",
        "workflows.change_workflow",
        "workflows.view_workflowversion",
        "workflows.change_workflowversion",
        "workflows.view_step",
        "workflows.add_step",
        "workflows.change_step",
        "workflows.delete_step",
        "workflows.view_enrollment",
        "workflows.add_enrollment",
        "workflows.change_enrollment",
        "workflows.view_steprun",
        "workflows.view_outboundmessage",
        "workflows.view_stafftask",
        "workflows.change_stafftask",
        # Automation rules are data ops' own (every change is logged with its author).
        "workflows.view_automationrule",
        "workflows.add_automationrule",
        "workflows.change_automationrule",
        "workflows.delete_automationrule",
        "workflows.view_workflowtemplate",
        "workflows.add_workflowtemplate",
        "workflows.change_workflowtemplate",
        # CRM handoff: the mapping is theirs to edit; handoffs are retried or settled, never deleted.
        "integrations.view_crmfieldmapping",
        "integrations.add_crmfieldmapping",
        "integrations.change_crmfieldmapping",
        "integrations.delete_crmfieldmapping",
        "integrations.view_crmhandoff",
        "integrations.change_crmhandoff",
    ),
    # Full raw payloads hold names, numbers and message bodies: a separate, smaller group.
    PAYLOAD_REVIEWERS_GROUP: ("integrations.view_raw_payload",),
}


def _permission(dotted: str) -> Permission:
    app_label, codename = dotted.split(".", 1)
    return Permission.objects.get(content_type__app_label=app_label, codename=codename)


@transaction.atomic
def roles_sync() -> dict[str, int]:
    """Create each role group and set its permissions to exactly the declared list."""
    result = {}
    for name, dotted_perms in ROLE_PERMISSIONS.items():
        group, _ = Group.objects.get_or_create(name=name)
        group.permissions.set([_permission(p) for p in dotted_perms])
        result[name] = len(dotted_perms)
    return result


def sync_roles_after_migrate(sender, using="default", verbosity=1, **kwargs) -> None:
    # Permissions are created per app after that app migrates; make sure every app's exist
    # before assigning them, whichever order the apps finished in.
    for app_config in django_apps.get_app_configs():
        create_permissions(app_config, verbosity=0, using=using)
    roles_sync()
