from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("hotfixes", "0003_merge_mergeitem"),
    ]

    operations = [
        migrations.AlterModelOptions(
            name="hotfix",
            options={"ordering": ["-opened_at"], "verbose_name_plural": "hotfixes"},
        ),
    ]
