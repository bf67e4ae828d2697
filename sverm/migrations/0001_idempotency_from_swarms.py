# IdempotencyRecord moved here from swarms, keeping its table (swarms_idempotencyrecord, created
# by swarms 0004): this migration only adds the model to sverm's state; swarms 0009 removes it
# from swarms' state. Neither touches the database.

import django.db.models.deletion
import django.utils.timezone
from django.db import migrations, models


class Migration(migrations.Migration):

    initial = True

    dependencies = [
        ('accounts', '0003_plan_limits'),
        # The table exists from here on, on a fresh database as on an existing one.
        ('swarms', '0004_idempotency'),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name='IdempotencyRecord',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('key', models.CharField(max_length=255)),
                        ('endpoint', models.CharField(max_length=200)),
                        ('request_fingerprint', models.CharField(max_length=64)),
                        ('status', models.CharField(choices=[('processing', 'Processing'), ('done', 'Done')], default='processing', max_length=20)),
                        ('response_status', models.PositiveSmallIntegerField(blank=True, null=True)),
                        ('response_body', models.JSONField(blank=True, null=True)),
                        ('created_at', models.DateTimeField(default=django.utils.timezone.now)),
                        ('expires_at', models.DateTimeField()),
                        ('workspace', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='idempotency_records', to='accounts.workspace')),
                    ],
                    options={
                        'db_table': 'swarms_idempotencyrecord',
                        'indexes': [models.Index(fields=['expires_at'], name='idempotency_expires')],
                        'constraints': [models.UniqueConstraint(fields=('workspace', 'key', 'endpoint'), name='idempotency_record_unique')],
                    },
                ),
            ],
            database_operations=[],
        ),
    ]
