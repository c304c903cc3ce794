"""Seed rows every tenant starts with (copied into new tenants from the template): the CAB rules
(quorum 2, emergency CAB quorum 1) and the risk questionnaire, modelled on ServiceNow's default change
risk assessment. Weights add up to the questionnaire score (modules/changes/services.py, risk_for)."""

from django.db import migrations

QUESTIONS = [
    (
        "done_before",
        "Has this change been done before?",
        [("yes", "Yes, successfully", 0), ("no", "No", 3)],
    ),
    (
        "backout_tested",
        "Is there a tested back-out plan?",
        [("yes", "Yes, tested", 0), ("untested", "Yes, not tested", 2), ("no", "No", 4)],
    ),
    (
        "downtime",
        "Does it need downtime?",
        [("no", "No", 0), ("yes", "Yes", 2)],
    ),
    (
        "users_affected",
        "Number of users affected",
        [("none", "None", 0), ("few", "1-10", 1), ("many", "11-100", 2), ("most", "More than 100", 3)],
    ),
]


def seed(apps, schema_editor):
    ChangeSettings = apps.get_model("changes", "ChangeSettings")
    RiskQuestion = apps.get_model("changes", "RiskQuestion")
    ChangeSettings.objects.create(pk=1, cab_quorum=2, ecab_quorum=1)
    RiskQuestion.objects.bulk_create(
        [
            RiskQuestion(
                key=key,
                text=text,
                order=index,
                answers=[{"value": v, "label": label, "weight": w} for v, label, w in answers],
            )
            for index, (key, text, answers) in enumerate(QUESTIONS, 1)
        ]
    )


def unseed(apps, schema_editor):
    for model in ("ChangeSettings", "RiskQuestion"):
        apps.get_model("changes", model).objects.all().delete()


class Migration(migrations.Migration):
    dependencies = [("changes", "0001_initial")]
    operations = [migrations.RunPython(seed, unseed)]
