"""Users who existed before sign-in required a verified address keep signing in: each gets their login
address as a verified primary allauth EmailAddress (an existing row for it is marked verified). New
users get theirs from accounts.services.user_create. docs/decisions/0016-accounts-and-sessions.md."""

from typing import Any

from django.db import migrations


def verify_existing(apps: Any, schema_editor: Any) -> None:
    User = apps.get_model("accounts", "User")
    EmailAddress = apps.get_model("account", "EmailAddress")
    for user in User.objects.all().iterator():
        address = EmailAddress.objects.filter(user_id=user.pk, email__iexact=user.email).first()
        if address is None:
            has_primary = EmailAddress.objects.filter(user_id=user.pk, primary=True).exists()
            EmailAddress.objects.create(
                user_id=user.pk, email=user.email, primary=not has_primary, verified=True
            )
        elif not address.verified:
            address.verified = True
            address.save(update_fields=["verified"])


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0004_user_session_epoch"),
        ("account", "0009_emailaddress_unique_primary_email"),
    ]

    operations = [migrations.RunPython(verify_existing, migrations.RunPython.noop)]
