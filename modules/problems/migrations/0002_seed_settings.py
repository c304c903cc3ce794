"""Seed the one ProblemSettings row every tenant starts with (copied into new tenants from the template)."""

from django.db import migrations


def seed(apps, schema_editor):
    apps.get_model("problems", "ProblemSettings").objects.create(
        pk=1, candidate_min_incidents=3, candidate_window_days=30
    )


def unseed(apps, schema_editor):
    apps.get_model("problems", "ProblemSettings").objects.all().delete()


class Migration(migrations.Migration):
    dependencies = [("problems", "0001_initial")]
    operations = [migrations.RunPython(seed, unseed)]
