"""The bench database and its data: created and migrated from scratch, a team-plan workspace with
an API key, bulk loads through PostgreSQL COPY, and runs made directly (not dispatched)."""

import random
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from urllib.parse import urlsplit, urlunsplit

import psycopg

BENCH_EMAIL = "bench@bench.local"
WORDS = ("alpha", "beta", "gamma", "delta", "market", "research", "review", "draft", "scan",
         "report", "hydrogen", "pricing", "support", "triage", "legal", "onboarding")  # fmt: skip


def _admin_url(database_url: str) -> tuple[str, str]:
    parts = urlsplit(database_url)
    name = parts.path.lstrip("/")
    if not name or name in ("postgres", "template0", "template1"):
        raise ValueError(f"refusing to use database {name!r} for benchmarks")
    return urlunsplit(parts._replace(path="/postgres")), name


def database_recreate(database_url: str) -> None:
    admin, name = _admin_url(database_url)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')


def database_drop(database_url: str) -> None:
    admin, name = _admin_url(database_url)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@dataclass(frozen=True)
class Tenant:
    user_id: str
    workspace_id: str
    api_key: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"}


def tenant_create() -> Tenant:
    """A staff-less user administering a team-plan workspace, with an admin API key. The team
    plan's limits are raised so that the benchmarks measure the limiter's cost, not its 429s."""
    from accounts.models import PlanLimits, User
    from accounts.services import platform_bootstrap

    result = platform_bootstrap(
        email=BENCH_EMAIL, password="bench-password-" + "x" * 12, workspace_name="Bench",
        plan="team",
    )  # fmt: skip
    # Not platform staff: the API key acts in its workspace like any customer's.
    User.objects.filter(pk=result.user.pk).update(is_staff=False, is_superuser=False)
    PlanLimits.objects.update_or_create(
        plan="team",
        defaults={"requests_per_minute": 10**9, "concurrent_runs": 100_000, "runs_per_day": None},
    )
    return Tenant(result.user.pk, result.workspace.pk, result.raw_api_key)


def tenant_second(tenant: Tenant, name: str) -> Tenant:
    """Another team-plan workspace of the same user, with its own admin API key."""
    from accounts.models import User
    from accounts.services import api_key_create, workspace_create

    user = User.objects.get(pk=tenant.user_id)
    workspace = workspace_create(name=name, owner=user, plan="team")
    _key, raw = api_key_create(workspace=workspace, name="bench", role="admin", created_by=user)
    return Tenant(user.pk, workspace.pk, raw)


def checkpoint() -> None:
    """Flush PostgreSQL's dirty pages now, so a bulk load's write-back does not land in the
    measurements that follow it."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("CHECKPOINT")


def _ulid_id(prefix: str, at: datetime) -> str:
    from ulid import ULID

    return f"{prefix}_{str(ULID.from_timestamp(at.timestamp())).lower()}"


def _copy(table: str, columns: list[str], rows) -> None:
    from django.db import connection

    connection.ensure_connection()
    raw = connection.connection  # psycopg 3
    statement = f"COPY {table} ({', '.join(columns)}) FROM STDIN"
    with raw.cursor() as cursor, cursor.copy(statement) as copy:
        for row in rows:
            copy.write_row(row)
    if not raw.autocommit:
        raw.commit()
    with raw.cursor() as cursor:
        cursor.execute(f"ANALYZE {table}")


def swarms_load(tenant: Tenant, count: int, seed: int = 8) -> float:
    """`count` swarms in the tenant's workspace, created over the past year (1% soft-deleted),
    then vacuumed as autovacuum would after such a load; returns the seconds the COPY took.
    Without the VACUUM no page of the new rows is marked all-visible, so an index-only scan
    (the exact `total`'s COUNT) must still visit the table for every row."""
    from django.utils import timezone

    rng = random.Random(seed)
    now = timezone.now()
    step = timedelta(days=365) / max(count, 1)
    tiers = ("ephemeral", "standard", "standard", "extended")

    def rows():
        for index in range(count):
            created = now - step * (count - index) + timedelta(microseconds=rng.randrange(1000))
            name = f"{rng.choice(WORDS)} {rng.choice(WORDS)} {index:07d}"
            deleted = created + timedelta(days=1) if rng.random() < 0.01 else None
            runtime = tenant.user_id if rng.random() < 0.3 else None
            yield (
                _ulid_id("swm", created), tenant.workspace_id, name,
                f"{rng.choice(WORDS)} swarm number {index}", None, tenant.user_id, runtime,
                tiers[index % len(tiers)], created, created, deleted,
            )  # fmt: skip

    start = time.perf_counter()
    _copy(
        "swarms_swarm",
        ["id", "workspace_id", "name", "description", "default_version_id", "created_by_id",
         "runtime_user_id", "retention_tier", "created_at", "updated_at", "deleted_at"],
        rows(),
    )  # fmt: skip
    elapsed = time.perf_counter() - start
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("VACUUM (ANALYZE) swarms_swarm")
    return elapsed


def ledger_load(tenant: Tenant, count: int, seed: int = 7) -> float:
    """`count` usage records in the tenant's workspace this month (UTC), spread over the days
    so far, across 200 runs, 4 models and 3 swarm types; returns the COPY's seconds. The
    monthly rollup is rebuilt from the ledger by the service that repairs it."""
    from django.utils import timezone

    rng = random.Random(seed)
    now = timezone.now()
    month_start = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    span = max((now - month_start).total_seconds() - 60, 60)
    models = ("gpt-4o-mini", "gpt-4o", "deepseek-chat", "llama-3.1-8b")
    types = ("research-swarm-v1", "debate-swarm-v1", "custom")
    runs = [(_ulid_id("run", now), types[i % 3]) for i in range(200)]

    def rows():
        for _ in range(count):
            run_id, swarm_type = rng.choice(runs)
            tokens_in, tokens_out = rng.randrange(100, 4000), rng.randrange(50, 2000)
            cost = Decimal(tokens_in * 150 + tokens_out * 600) / Decimal(10**9)
            created = month_start + timedelta(seconds=rng.random() * span)
            yield (
                tenant.workspace_id, run_id, "", swarm_type, f"agent-{rng.randrange(5)}",
                rng.choice(models), "simulated", tokens_in, tokens_out, cost, created,
            )  # fmt: skip

    start = time.perf_counter()
    _copy(
        "billing_usagerecord",
        ["workspace_id", "run_id", "swarm_id", "swarm_type", "agent_id", "model", "provider",
         "tokens_in", "tokens_out", "cost_usd", "created_at"],
        rows(),
    )  # fmt: skip
    elapsed = time.perf_counter() - start
    from billing.services import usage_rollup_rebuild
    from swarms.models import Run

    usage_rollup_rebuild(runs=Run.objects.all(), workspace_id=tenant.workspace_id)
    return elapsed


def builtin_definition(template_id: str) -> dict:
    from templates_app.services import builtin_sources, definition_parse

    definition, _yaml = definition_parse(source=builtin_sources()[template_id])
    return definition


def run_make(tenant: Tenant, definition: dict, *, template_id: str = "", task: str = "") -> str:
    """A queued run row, as run_create makes it, but not dispatched: the caller executes it."""
    from swarms.engine import Definition, estimate_cost
    from swarms.models import Run
    from swarms.providers import price_map

    parsed = Definition.from_dict(definition)
    task = task or "Investigate the Norwegian hydrogen economy"
    expected, _worst = estimate_cost(parsed, task, price_map())
    run = Run.objects.create(
        workspace_id=tenant.workspace_id,
        template_id=template_id,
        swarm_type=template_id or "custom",
        definition=definition,
        task=task,
        max_budget_usd=Decimal("5.00"),
        estimated_cost_usd=expected,
        agents_total=len(parsed.expanded_agents()),
        simulated=True,
        created_by_id=tenant.user_id,
    )
    return run.pk
