from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("probe", "0001_initial")]
    operations = [
        migrations.AddField(
            model_name="proberecord", name="added_later", field=models.CharField(default="", max_length=50)
        ),
    ]
