from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("lifecycle", "0006_environment_position_draft_revision"),
    ]

    operations = [
        migrations.CreateModel(
            name="LoginAttempt",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                (
                    "scope",
                    models.CharField(
                        choices=[
                            ("pair", "Username from address"),
                            ("address", "Address"),
                            ("username", "Username"),
                        ],
                        max_length=10,
                    ),
                ),
                ("username", models.CharField(blank=True, max_length=150)),
                ("address", models.CharField(blank=True, max_length=45)),
                ("failures", models.PositiveIntegerField(default=0)),
                ("window_started_at", models.DateTimeField()),
                ("last_attempt_at", models.DateTimeField(db_index=True)),
                ("last_success_at", models.DateTimeField(blank=True, null=True)),
            ],
            options={
                "constraints": [
                    models.UniqueConstraint(
                        fields=("scope", "username", "address"), name="one_login_counter_per_key"
                    )
                ],
            },
        ),
    ]
