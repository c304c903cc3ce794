"""Seed rows every tenant starts with (copied into new tenants from the template).

The priority matrix reproduces the one the shared ServiceNow event log was recorded with: every
impact/urgency pair that occurs in it maps to the priority it recorded (checked by
modules/incidents/tests/test_priority_matrix.py); the one pair absent from the log, impact 1 x urgency 3,
takes ServiceNow's default (3 - Moderate). Resolution codes are ServiceNow's default close codes.
"""

from django.db import migrations

MATRIX = {
    (1, 1): 1,
    (1, 2): 2,
    (1, 3): 3,
    (2, 1): 2,
    (2, 2): 3,
    (2, 3): 4,
    (3, 1): 3,
    (3, 2): 4,
    (3, 3): 4,
}
CODES = [
    ("solved_workaround", "Solved (Work Around)"),
    ("solved_permanently", "Solved (Permanently)"),
    ("solved_remotely_workaround", "Solved Remotely (Work Around)"),
    ("solved_remotely_permanently", "Solved Remotely (Permanently)"),
    ("not_solved_not_reproducible", "Not Solved (Not Reproducible)"),
    ("not_solved_too_costly", "Not Solved (Too Costly)"),
    ("resolved_by_caller", "Closed/Resolved by Caller"),
]


def seed(apps, schema_editor):
    PriorityRule = apps.get_model("incidents", "PriorityRule")
    ResolutionCode = apps.get_model("incidents", "ResolutionCode")
    IncidentSettings = apps.get_model("incidents", "IncidentSettings")
    PriorityRule.objects.bulk_create(
        [PriorityRule(impact=i, urgency=u, priority=p) for (i, u), p in MATRIX.items()]
    )
    ResolutionCode.objects.bulk_create([ResolutionCode(code=c, label=label) for c, label in CODES])
    IncidentSettings.objects.create(pk=1)


def unseed(apps, schema_editor):
    for model in ("PriorityRule", "ResolutionCode", "IncidentSettings"):
        apps.get_model("incidents", model).objects.all().delete()


class Migration(migrations.Migration):
    dependencies = [("incidents", "0001_initial")]
    operations = [migrations.RunPython(seed, unseed)]
