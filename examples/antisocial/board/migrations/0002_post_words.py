from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("board", "0001_initial"),
    ]

    operations = [
        migrations.AddField(
            model_name="post",
            name="words",
            field=models.PositiveIntegerField(blank=True, null=True),
        ),
    ]
