from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("lifecycle", "0011_pipeline_revision")]

    operations = [
        migrations.CreateModel(
            name="PipelineChange",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("revision", models.BigIntegerField(db_index=True)),
                ("application_id", models.BigIntegerField(null=True)),
            ],
        ),
    ]
