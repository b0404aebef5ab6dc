from django.db import migrations, models


def create_row(apps, schema_editor):
    apps.get_model("lifecycle", "PipelineRevision").objects.get_or_create(pk=1)


class Migration(migrations.Migration):
    dependencies = [("lifecycle", "0010_delivery_attempt_unique")]

    operations = [
        migrations.CreateModel(
            name="PipelineRevision",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("value", models.BigIntegerField(default=0)),
            ],
        ),
        migrations.RunPython(create_row, migrations.RunPython.noop),
    ]
