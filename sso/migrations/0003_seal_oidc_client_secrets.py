"""Seal the OIDC client secrets stored in plain text by 0002 (in the connection row and its SocialApp):
the row keeps a Fernet token (controlplane.accounts.crypto, label ``OIDC_CLIENT_SECRET``) and the
SocialApp's copy is emptied. Reversing unseals them back into both places."""

from django.db import migrations

from controlplane.accounts.crypto import SecretUnreadable, secret_seal, secret_unseal

OIDC_CLIENT_SECRET = b"msp-itsm sso oidc client secret v1"  # = sso.oidc_services.OIDC_CLIENT_SECRET


def seal(apps, schema_editor):
    OidcConnection = apps.get_model("sso", "OidcConnection")
    SocialApp = apps.get_model("socialaccount", "SocialApp")
    for connection in OidcConnection.objects.all():
        try:
            secret_unseal(connection.client_secret, purpose=OIDC_CLIENT_SECRET)
            continue  # already sealed
        except SecretUnreadable:
            pass
        connection.client_secret = secret_seal(connection.client_secret, purpose=OIDC_CLIENT_SECRET)
        connection.save(update_fields=["client_secret"])
        SocialApp.objects.filter(pk=connection.social_app_id).update(secret="")


def unseal(apps, schema_editor):
    OidcConnection = apps.get_model("sso", "OidcConnection")
    SocialApp = apps.get_model("socialaccount", "SocialApp")
    for connection in OidcConnection.objects.all():
        plain = secret_unseal(connection.client_secret, purpose=OIDC_CLIENT_SECRET)
        connection.client_secret = plain
        connection.save(update_fields=["client_secret"])
        SocialApp.objects.filter(pk=connection.social_app_id).update(secret=plain)


class Migration(migrations.Migration):
    dependencies = [("sso", "0002_oidc_connection")]

    operations = [migrations.RunPython(seal, unseal)]
