# IdempotencyRecord moved to the sverm app (sverm/models.py), which keeps this app's table:
# the model leaves swarms' state only, after sverm 0001 took it over; the table stays.

from django.db import migrations


class Migration(migrations.Migration):

    dependencies = [
        ('swarms', '0008_swarm_name_created_index'),
        ('sverm', '0001_idempotency_from_swarms'),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.DeleteModel(
                    name='IdempotencyRecord',
                ),
            ],
            database_operations=[],
        ),
    ]
