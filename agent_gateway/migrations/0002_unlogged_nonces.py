"""The nonce table needs no WAL (Nonce's docstring, decision 0018): UNLOGGED."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("agent_gateway", "0001_initial")]

    operations = [
        migrations.RunSQL(
            "ALTER TABLE agent_gateway_nonce SET UNLOGGED", "ALTER TABLE agent_gateway_nonce SET LOGGED"
        )
    ]
