"""Django settings for sverm, read from the environment.

Unset REDIS_URL means the embedded mode: SQLite (unless DATABASE_URL says otherwise), the
in-memory channel layer, the local-memory cache and the in-process executor. Setting REDIS_URL
switches the channel layer, the cache and the Celery broker to Redis.

Longer than our ~450-line rule on purpose: every setting an operator can change is here, grouped
under banner comments, each beside the reason for its default, so one file answers "what does
this variable do" (README's configuration table points here).
"""

import ipaddress
import json
import os
import secrets
from datetime import timedelta
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from sverm.periodic import beat_schedule


def env_bool(name: str, default: bool = False) -> bool:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_list(name: str, default: list[str]) -> list[str]:
    value = os.environ.get(name)
    if not value:
        return default
    return [item.strip() for item in value.split(",") if item.strip()]


# ------------------------------------------------------------------------------
# PATHS AND MODE
# ------------------------------------------------------------------------------
BASE_DIR = Path(__file__).resolve().parent.parent
DATA_DIR = Path(os.environ.get("SVERM_DATA_DIR") or BASE_DIR).resolve()
REDIS_URL = os.environ.get("REDIS_URL", "")
EMBEDDED = not REDIS_URL

DEBUG = env_bool("DEBUG", False)


def _secret_key() -> str:
    key = os.environ.get("SECRET_KEY", "")
    if key:
        return key
    if not (EMBEDDED or DEBUG):
        raise ImproperlyConfigured(
            "SECRET_KEY must be set when DEBUG is off outside the embedded mode (REDIS_URL is set)."
        )
    # Embedded mode: keep one generated key in the data dir so sessions survive restarts.
    path = DATA_DIR / ".secret_key"
    if path.exists():
        return path.read_text().strip()
    DATA_DIR.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(50)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(key)
    return key


SECRET_KEY = _secret_key()
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]", "testserver"])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

# ------------------------------------------------------------------------------
# APPS
# ------------------------------------------------------------------------------
DJANGO_APPS = [
    # Daphne's `runserver`; its own app config would import the server into every process.
    "sverm.apps.DaphneRunserverConfig",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
]
THIRD_PARTY_APPS = [
    "rest_framework",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "channels",
]
LOCAL_APPS = [
    "sverm",  # case-insensitive lookups that fold Unicode on SQLite too (sverm/text_match.py)
    "accounts",
    "templates_app",
    "swarms",
    "billing",
    "tools",
    "audit",
    "schedules",
    "batches",
]
INSTALLED_APPS = DJANGO_APPS + THIRD_PARTY_APPS + LOCAL_APPS

MIDDLEWARE = [
    "sverm.api.middleware.RequestIdMiddleware",
    # Counts per client IP what no throttle counted, so every API response has X-RateLimit-*.
    "sverm.api.throttling.OpenRequestLimitMiddleware",
    "sverm.api.middleware.NulRefusingMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # Each request's audit context (IP, correlation id; the admin's operator): after auth.
    "audit.middleware.AuditContextMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "sverm.urls"
ASGI_APPLICATION = "sverm.asgi.application"
WSGI_APPLICATION = "sverm.wsgi.application"
AUTH_USER_MODEL = "accounts.User"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
APPEND_SLASH = False

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# ------------------------------------------------------------------------------
# DATABASE
# ------------------------------------------------------------------------------
DATABASES = {
    "default": dj_database_url.parse(
        os.environ.get("DATABASE_URL") or f"sqlite:///{DATA_DIR / 'sverm.sqlite3'}",
        conn_max_age=int(os.environ.get("DB_CONN_MAX_AGE", "0")),
    )
}
# PostgreSQL connections are bounded per process: every process (each Uvicorn worker, a Celery
# worker, beat, a manage.py command) draws them from its own pool (Django's psycopg pool) of at
# most DB_POOL_MAX_SIZE; a thread that needs one while all are taken waits up to DB_POOL_TIMEOUT
# seconds. Without it, ASGI serves each request in flight on a thread with a connection of its
# own, so a burst of requests opens as many (100 POSTs at once: "too many clients already").
# The processes' sizes must add up to less than PostgreSQL's max_connections: docker-compose's
# layout is (2 Uvicorn workers + 1 Celery worker + beat) x 12 = 48 of the default 100 (README,
# "Connections"). DB_POOL_MAX_SIZE=0: no pool, a connection per thread kept DB_CONN_MAX_AGE s.
DB_POOL_MAX_SIZE = int(os.environ.get("DB_POOL_MAX_SIZE") or "12")
DB_POOL_TIMEOUT = float(os.environ.get("DB_POOL_TIMEOUT") or "30")
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql" and DB_POOL_MAX_SIZE > 0:
    if DATABASES["default"]["CONN_MAX_AGE"]:
        raise ImproperlyConfigured(
            "DB_CONN_MAX_AGE keeps a connection per thread, which the pool replaces: unset it, "
            "or set DB_POOL_MAX_SIZE=0 to turn the pool off."
        )
    DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {
        "min_size": min(2, DB_POOL_MAX_SIZE),
        "max_size": DB_POOL_MAX_SIZE,
        "timeout": DB_POOL_TIMEOUT,
    }
    # A pooled connection is checked as it is handed out, so one that a PostgreSQL restart or a
    # failover closed is replaced rather than failing its next query.
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
# SQLite's `synchronous` in WAL mode. FULL (the default) syncs the log at every commit, so a
# recorded charge or checkpoint survives an OS crash or power loss too: a resumed run never pays
# again for a call whose record the disk lost. It costs about 5 ms a commit on a common SSD, with
# the write lock held, which bounds many runs at once (bench/README, "Many runs at once").
# NORMAL syncs at checkpoints only: a commit survives the process crashing, but an OS crash may
# lose the last few (never corrupting the file), and with them what a run had paid.
SQLITE_SYNCHRONOUS = os.environ.get("SVERM_SQLITE_SYNCHRONOUS", "FULL").upper()
if SQLITE_SYNCHRONOUS not in ("NORMAL", "FULL", "EXTRA"):
    raise ImproperlyConfigured("SVERM_SQLITE_SYNCHRONOUS must be NORMAL, FULL or EXTRA.")
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Django's SQLite backend with this process's write transactions queued on a lock rather
    # than on SQLite's sleeping busy handler (sverm/sqlite_backend/base.py says why).
    DATABASES["default"]["ENGINE"] = "sverm.sqlite_backend"
    # WAL lets the stream readers and the executor write without "database is locked".
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {
            "init_command": f"PRAGMA journal_mode=WAL; PRAGMA synchronous={SQLITE_SYNCHRONOUS};",
            "transaction_mode": "IMMEDIATE",
            "timeout": 20,
        }
    )
    # Tests use an in-memory database (Django's default for SQLite), named so that test runners
    # which give each process a database of its own (pytest-xdist) keep it in memory too.
    DATABASES["default"].setdefault("TEST", {}).setdefault("NAME", ":memory:")

# ------------------------------------------------------------------------------
# CACHE, CHANNELS, CELERY
# ------------------------------------------------------------------------------
# Messages a stream's mailbox holds before the channel layer drops (streams then fill the gap
# from the database); the integration tests make it tiny to prove that.
CHANNEL_CAPACITY = int(os.environ.get("SVERM_CHANNEL_CAPACITY", "1000"))
# A stream that hears nothing live for about this long re-joins its group and catches up from
# the database (a lost last event); every quiet stream does, so not too often. A Redis restart
# does not wait for it: relays join again as soon as Redis answers (swarms/fanout.py).
SVERM_STREAM_RESYNC_SECONDS = float(os.environ.get("SVERM_STREAM_RESYNC_SECONDS", "15"))
if REDIS_URL:
    CACHES = {
        "default": {
            # Django's RedisCache, served from the process's memory while Redis is unreachable.
            "BACKEND": "sverm.cache.FailSafeRedisCache",
            "LOCATION": REDIS_URL,
            # A Redis that stops answering fails a cache call in a second, not a TCP timeout.
            "OPTIONS": {"socket_connect_timeout": 1, "socket_timeout": 1},
        }
    }
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            # A full mailbox drops messages; streams fill such gaps from the database.
            "CONFIG": {"hosts": [REDIS_URL], "capacity": CHANNEL_CAPACITY},
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "sverm.layers.ThreadSafeInMemoryChannelLayer",
            "CONFIG": {"capacity": CHANNEL_CAPACITY},
        }
    }

CELERY_BROKER_URL = os.environ.get("CELERY_BROKER_URL") or REDIS_URL or "memory://"
# kombu's Redis transport with the fixes that let a worker survive a Redis restart with tasks in
# flight (sverm/broker.py); other brokers keep their own.
if CELERY_BROKER_URL.startswith(("redis://", "rediss://")):
    CELERY_BROKER_TRANSPORT = "sverm.broker:Transport"
CELERY_RESULT_BACKEND = None
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# A worker waits out a broker outage however long it lasts (Celery gives up after 100 tries, some
# 45 minutes, and exits: `make run`-style and systemd users have no restart policy), and lets its
# runs go on meanwhile: their state is in PostgreSQL, and a task redelivered while its run goes on
# finds nothing to claim. (Celery 6 would cancel them; its warning at each outage says so.)
CELERY_BROKER_CONNECTION_MAX_RETRIES = None
CELERY_WORKER_CANCEL_LONG_RUNNING_TASKS_ON_CONNECTION_LOSS = False
CELERY_TIMEZONE = "UTC"

# ------------------------------------------------------------------------------
# RUNS AND LLM PROVIDERS
# ------------------------------------------------------------------------------
# Runs execute in Celery workers when a broker is configured, else in-process ("thread": on the
# server's run host, an event loop that holds many runs, since a run mostly waits on LLM calls).
SVERM_EXECUTOR = os.environ.get("SVERM_EXECUTOR") or ("celery" if REDIS_URL else "thread")
# Runs the embedded mode executes at once; later ones wait, queued, for a slot. (A Celery
# worker's --concurrency plays this part in production.)
SVERM_EXECUTOR_MAX_RUNS = max(1, int(os.environ.get("SVERM_EXECUTOR_MAX_RUNS", "100")))
# Database threads (and connections) per process that the runs it executes share.
SVERM_EXECUTOR_DB_LANES = max(1, int(os.environ.get("SVERM_EXECUTOR_DB_LANES", "4")))
# A lane with no run closes its connection after this many seconds (0: as its last run ends).
SVERM_EXECUTOR_DB_IDLE_SECONDS = float(os.environ.get("SVERM_EXECUTOR_DB_IDLE_SECONDS", "30"))
SVERM_SIMULATED_LATENCY = float(os.environ.get("SVERM_SIMULATED_LATENCY", "0.2"))
SVERM_DEFAULT_BUDGET_USD = os.environ.get("SVERM_DEFAULT_BUDGET_USD", "5.00")
# How often the embedded mode's reaper looks for runs whose worker was lost (0: never).
SVERM_REAPER_INTERVAL_SECONDS = float(os.environ.get("SVERM_REAPER_INTERVAL_SECONDS", "30"))
# Crash recovery: a running run's worker writes a heartbeat this often; a run without one for
# SVERM_STALE_AFTER_SECONDS is resumed by another worker (settled calls replayed, not paid for
# again) up to SVERM_RUN_MAX_ATTEMPTS attempts in all, and failed with `worker_lost` when no
# attempt is left or no worker took it up within another SVERM_STALE_AFTER_SECONDS.
SVERM_HEARTBEAT_SECONDS = float(os.environ.get("SVERM_HEARTBEAT_SECONDS", "15"))
SVERM_STALE_AFTER_SECONDS = float(os.environ.get("SVERM_STALE_AFTER_SECONDS", "60"))
SVERM_RUN_MAX_ATTEMPTS = int(os.environ.get("SVERM_RUN_MAX_ATTEMPTS", "3"))
# The longest a run may execute; past it, it fails with `timeout` (partial output and cost kept).
SVERM_RUN_TIMEOUT_SECONDS = float(os.environ.get("SVERM_RUN_TIMEOUT_SECONDS", str(6 * 3600)))
if not 0 < SVERM_HEARTBEAT_SECONDS < SVERM_STALE_AFTER_SECONDS:
    raise ImproperlyConfigured(
        "SVERM_HEARTBEAT_SECONDS must be positive and below SVERM_STALE_AFTER_SECONDS."
    )
if SVERM_RUN_MAX_ATTEMPTS < 1:
    raise ImproperlyConfigured("SVERM_RUN_MAX_ATTEMPTS must be at least 1.")
# Redis redelivers a task not acknowledged within the visibility timeout (tasks are acknowledged
# late, when they end): keep it above the longest run, so a long run is never run twice.
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": int(SVERM_RUN_TIMEOUT_SECONDS) + 3600}
# Schedules (schedules/): how often due schedules are fired (Celery beat, or the embedded timer,
# where 0 pauses it); a schedule's slots are claimed in the database, so any number of processes
# may tick. A sixth cron field of seconds is for tests only.
SVERM_SCHEDULE_TICK_SECONDS = float(os.environ.get("SVERM_SCHEDULE_TICK_SECONDS", "10"))
SVERM_SCHEDULE_SECONDS_FIELD = env_bool("SVERM_SCHEDULE_SECONDS_FIELD")
if SVERM_SCHEDULE_TICK_SECONDS < 0:
    raise ImproperlyConfigured("SVERM_SCHEDULE_TICK_SECONDS must be 0 or more.")
# Every periodic task is declared in sverm/periodic.py (its intervals may name settings above).
CELERY_BEAT_SCHEDULE = beat_schedule(globals())
# Webhooks: hosts that may be sent to although private/loopback (comma list, e.g. "127.0.0.1");
# the POST timeout; the retry delays in seconds (Standard Webhooks' schedule unless set).
SVERM_WEBHOOK_ALLOWED_HOSTS = env_list("SVERM_WEBHOOK_ALLOWED_HOSTS", [])
SVERM_WEBHOOK_TIMEOUT = float(os.environ.get("SVERM_WEBHOOK_TIMEOUT", "15"))
MAX_WEBHOOK_RETRY_DELAY = 86400  # a day: Standard Webhooks' longest delay

# Tools agents call (tools/): how long one call may take and how much of its result the model
# reads; the built-in http_fetch's hosts that may be fetched although private/loopback (comma
# list, the same SSRF guard as webhooks), its time limit and how many bytes it reads at most.
SVERM_TOOL_TIMEOUT_SECONDS = float(os.environ.get("SVERM_TOOL_TIMEOUT_SECONDS", "30"))
SVERM_TOOL_MAX_RESULT_CHARS = int(os.environ.get("SVERM_TOOL_MAX_RESULT_CHARS", "20000"))
SVERM_TOOL_FETCH_ALLOWED_HOSTS = env_list("SVERM_TOOL_FETCH_ALLOWED_HOSTS", [])
SVERM_TOOL_FETCH_TIMEOUT_SECONDS = float(os.environ.get("SVERM_TOOL_FETCH_TIMEOUT_SECONDS", "15"))
SVERM_TOOL_FETCH_MAX_BYTES = int(os.environ.get("SVERM_TOOL_FETCH_MAX_BYTES", "2000000"))
# MCP servers workspaces register (tools/mcp.py): hosts that may be reached although private or
# loopback (comma list; an MCP server on the same network as sverm must be named here), and how
# long listing a server's tools may take.
SVERM_MCP_ALLOWED_HOSTS = env_list("SVERM_MCP_ALLOWED_HOSTS", [])
SVERM_MCP_TIMEOUT_SECONDS = float(os.environ.get("SVERM_MCP_TIMEOUT_SECONDS", "15"))
# A tool call waiting for an operator's approval is denied after this long (the reaper checks).
SVERM_APPROVAL_TIMEOUT_SECONDS = float(os.environ.get("SVERM_APPROVAL_TIMEOUT_SECONDS", "86400"))
# A run paused for budget (it opted in) fails `budget_exceeded` after this long unless raised.
SVERM_BUDGET_PAUSE_TIMEOUT_SECONDS = float(
    os.environ.get("SVERM_BUDGET_PAUSE_TIMEOUT_SECONDS", "86400")
)


def env_delays(name: str, default: list[float]) -> list[float]:
    """Comma-separated delays in seconds (`0,5,300`), each from 0 to MAX_WEBHOOK_RETRY_DELAY,
    or ImproperlyConfigured. Entry n is the wait before attempt n + 1."""
    value = os.environ.get(name, "").strip()
    if not value:
        return default
    delays = []
    for item in (part.strip() for part in value.split(",")):
        digits = item.replace(".", "", 1)
        if not (digits.isascii() and digits.isdigit()) or float(item) > MAX_WEBHOOK_RETRY_DELAY:
            raise ImproperlyConfigured(
                f"{name} must be comma-separated delays in seconds from 0 to "
                f"{MAX_WEBHOOK_RETRY_DELAY} (e.g. '0,5,300'), not {value!r}."
            )
        delays.append(float(item))
    return delays


# Standard Webhooks: immediately, 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 14 h, 20 h, 24 h.
SVERM_WEBHOOK_RETRY_SCHEDULE = env_delays(
    "SVERM_WEBHOOK_RETRY_SCHEDULE", [0, 5, 300, 1800, 7200, 18000, 36000, 50400, 72000, 86400]
)


def _llm_providers() -> dict[str, dict]:
    """Provider name -> {kind, base_url, api_key, timeout}. `SVERM_PROVIDERS` (JSON) adds any
    OpenAI-compatible endpoint (kind "openai-compatible", the default, which needs an api_key)
    or another kind swarms.engine.providers.PROVIDER_KINDS knows ("simulated"); OPENAI_* and
    DEEPSEEK_* are shorthands."""
    providers: dict[str, dict] = {}
    timeout = float(os.environ.get("LLM_TIMEOUT_SECONDS", "60"))
    if os.environ.get("OPENAI_API_KEY"):
        providers["openai"] = {
            "api_key": os.environ["OPENAI_API_KEY"],
            "base_url": os.environ.get("OPENAI_BASE_URL", ""),
            "timeout": timeout,
        }
    if os.environ.get("DEEPSEEK_API_KEY"):
        providers["deepseek"] = {
            "api_key": os.environ["DEEPSEEK_API_KEY"],
            "base_url": os.environ.get("DEEPSEEK_BASE_URL", "https://api.deepseek.com"),
            "timeout": timeout,
        }
    extra = os.environ.get("SVERM_PROVIDERS")
    if extra:
        try:
            parsed = json.loads(extra)
        except ValueError as exc:
            raise ImproperlyConfigured(f"SVERM_PROVIDERS is not valid JSON: {exc}") from None
        for name, config in parsed.items():
            if not isinstance(config, dict):
                raise ImproperlyConfigured(f"SVERM_PROVIDERS[{name!r}] must be an object.")
            if config.get("kind", "openai-compatible") == "openai-compatible" and (
                "api_key" not in config
            ):
                raise ImproperlyConfigured(f"SVERM_PROVIDERS[{name!r}] needs an api_key.")
            providers[name] = {"timeout": timeout, **config}
    return providers


LLM_PROVIDERS = _llm_providers()
# One LLM call: each attempt may take LLM_TIMEOUT_SECONDS, all its attempts together (with the
# pauses between them) LLM_CALL_DEADLINE_SECONDS; LLM_MAX_ATTEMPTS in all (408/409/429/5xx,
# timeouts and dropped connections are retried). sverm retries, not the SDK, so every attempt
# is reserved against the run's budget (a provider may bill each one).
LLM_TIMEOUT_SECONDS = float(os.environ.get("LLM_TIMEOUT_SECONDS", "60"))
LLM_CALL_DEADLINE_SECONDS = float(os.environ.get("LLM_CALL_DEADLINE_SECONDS", "120"))
LLM_MAX_ATTEMPTS = int(os.environ.get("LLM_MAX_ATTEMPTS", "3"))
# A call's max_tokens is clamped to what the budget can pay, never below this many output
# tokens; a budget below the cost of every call at this floor is refused at creation (422).
SVERM_MIN_OUTPUT_TOKENS = int(os.environ.get("SVERM_MIN_OUTPUT_TOKENS", "64"))
if LLM_MAX_ATTEMPTS < 1 or SVERM_MIN_OUTPUT_TOKENS < 1:
    raise ImproperlyConfigured("LLM_MAX_ATTEMPTS and SVERM_MIN_OUTPUT_TOKENS must be at least 1.")
if LLM_TIMEOUT_SECONDS <= 0 or LLM_CALL_DEADLINE_SECONDS <= 0:
    raise ImproperlyConfigured(
        "LLM_TIMEOUT_SECONDS and LLM_CALL_DEADLINE_SECONDS must be positive."
    )

# ------------------------------------------------------------------------------
# RETENTION (swarms/services/retention.py; hourly, by Celery beat or the embedded timer)
# ------------------------------------------------------------------------------
MAX_RETENTION_DAYS = 36500  # a century; a longer window overflows date arithmetic


def env_days(name: str, default: int) -> int:
    """A whole number of days from 1 to MAX_RETENTION_DAYS, or ImproperlyConfigured."""
    value = os.environ.get(name, "").strip()
    if not value:
        return default
    if not value.isascii() or not value.isdigit() or not 1 <= int(value) <= MAX_RETENTION_DAYS:
        raise ImproperlyConfigured(
            f"{name} must be a whole number of days from 1 to {MAX_RETENTION_DAYS}, not {value!r}."
        )
    return int(value)


def _retention_days() -> dict[str, int]:
    """Retention tier -> days a terminal run keeps its events and output. Runs without a swarm
    (`/v1` template and inline runs) are in the `standard` tier."""
    defaults = {"ephemeral": 7, "standard": 30, "extended": 365}
    return {
        tier: env_days(f"SVERM_RETENTION_{tier.upper()}_DAYS", days)
        for tier, days in defaults.items()
    }


SVERM_RETENTION_DAYS = _retention_days()
# Soft-deleted swarms are purged (versions, runs, events) this many days after their deletion.
SVERM_TRASH_DAYS = env_days("SVERM_TRASH_DAYS", 30)

# ------------------------------------------------------------------------------
# AUTH
# ------------------------------------------------------------------------------
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

SIMPLE_JWT = {
    "ACCESS_TOKEN_LIFETIME": timedelta(
        seconds=int(os.environ.get("JWT_ACCESS_LIFETIME_SECONDS", str(24 * 3600)))
    ),
    "REFRESH_TOKEN_LIFETIME": timedelta(days=14),
    "AUTH_HEADER_TYPES": ("Bearer",),
    "USER_ID_FIELD": "id",
    "USER_ID_CLAIM": "user_id",
    "UPDATE_LAST_LOGIN": True,
}

# ------------------------------------------------------------------------------
# REST FRAMEWORK AND OPENAPI
# ------------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "accounts.authentication.ApiKeyAuthentication",
        "accounts.authentication.BearerJWTAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    "DEFAULT_FILTER_BACKENDS": [
        "sverm.api.listing.ShorthandFilterBackend",
        "sverm.api.listing.ListFilterBackend",
    ],
    "DEFAULT_PAGINATION_CLASS": "sverm.api.pagination.KeysetPagination",
    "DEFAULT_SCHEMA_CLASS": "sverm.api.schema.SvermAutoSchema",
    "EXCEPTION_HANDLER": "sverm.api.errors.exception_handler",
    # Every authenticated request counts against its plan's requests/minute (accounts.PlanLimits);
    # `/api/auth/*` replaces this with its own per-IP limit (SVERM_AUTH_RATE).
    "DEFAULT_THROTTLE_CLASSES": ["accounts.throttling.PlanRateThrottle"],
    # Client IPs come from REMOTE_ADDR unless told how many proxies append X-Forwarded-For.
    "NUM_PROXIES": int(os.environ.get("NUM_PROXIES", "0")),
    "UNAUTHENTICATED_USER": None,
    "COERCE_DECIMAL_TO_STRING": False,
    "DATETIME_FORMAT": "%Y-%m-%dT%H:%M:%S.%fZ",
}

# The plan limits: requests/minute per key or user, and run quotas per workspace (off: none).
SVERM_RATE_LIMITS = env_bool("SVERM_RATE_LIMITS", True)


def env_per_minute(name: str, default: str) -> int:
    """A rate such as `20/min` (or `/m`, `/minute`; `N/s` is N*60 a minute) as requests per
    minute, the window every limit is counted in; ImproperlyConfigured otherwise."""
    value = os.environ.get(name, "").strip() or default
    count, _, period = value.partition("/")
    seconds = {"s": 1, "sec": 1, "second": 1, "m": 60, "min": 60, "minute": 60}.get(period)
    if not count.isascii() or not count.isdigit() or seconds is None or int(count) < 1:
        raise ImproperlyConfigured(f"{name} must be like 20/min, not {value!r}.")
    return int(count) * 60 // seconds


# Per client IP, requests a minute of what no plan counts (sverm/api/throttling.py):
# `/api/auth/*` (always on: it guards passwords), then with SVERM_RATE_LIMITS every other
# request no credential was counted for (refused credentials, unknown routes, the docs), and
# the health probes, which have a higher limit of their own.
SVERM_AUTH_RATE = env_per_minute("SVERM_AUTH_RATE", "20/min")
SVERM_ANON_RATE = env_per_minute("SVERM_ANON_RATE", "60/min")
SVERM_PROBE_RATE = env_per_minute("SVERM_PROBE_RATE", "1200/min")
# A run's status read with an API key (`GET /v1/swarms/{id}`, `GET /api/runs/{id}`) served in
# front of Django's handler with one thread hop (swarms/fast_reads.py); off: through Django.
SVERM_FAST_READS = env_bool("SVERM_FAST_READS", True)
# How long a process keeps a finished run's status and a checked API key for those reads; a
# change made in another process shows within this time (0: nothing kept).
SVERM_FAST_READ_CACHE_SECONDS = float(os.environ.get("SVERM_FAST_READ_CACHE_SECONDS", "2"))
# `GET /api/runs/{id}/wait`: the longest `timeout` a caller may ask for, and how many requests
# one server process lets wait at once (each holds a thread, no database connection).
SVERM_WAIT_MAX_SECONDS = int(os.environ.get("SVERM_WAIT_MAX_SECONDS", "300"))
SVERM_WAIT_MAX_WAITERS = int(os.environ.get("SVERM_WAIT_MAX_WAITERS", "200"))

SPECTACULAR_SETTINGS = {
    "TITLE": "sverm API",
    "DESCRIPTION": (
        "Run budgeted swarms of LLM agents. `/v1` is the run API; `/api` is the management API. "
        "Authenticate with `Authorization: Bearer <JWT or sk-sverm-… API key>`. Money (every "
        "`*_usd` and `*Usd` field) is USD as a JSON number rounded down to 6 decimal places, in "
        "bodies, WebSocket stream messages and webhook payloads alike. The WebSocket streams "
        "(a run's events, a workspace's run statuses) are described in AsyncAPI 3 at "
        "[/asyncapi.json](/asyncapi.json) (and [/asyncapi.yaml](/asyncapi.yaml))."
    ),
    "EXTERNAL_DOCS": {
        "description": "The WebSocket streams, in AsyncAPI 3",
        "url": "/asyncapi.json",
    },
    "VERSION": "0.1.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "sverm.api.schema.describe_operations",
    ],
    "ENUM_NAME_OVERRIDES": {
        "RoleEnum": "accounts.models.Role",
        "PlanEnum": "accounts.models.Plan",
        "ApiKeyStatusEnum": "accounts.models.ApiKeyStatus",  # API key expiry (issue 19)
        "ErrorCodeEnum": "sverm.api.schema.ERROR_CODE_CHOICES",
        "V1RunStatusEnum": "swarms.models.V1_STATUSES",
    },
}

# ------------------------------------------------------------------------------
# I18N, STATIC, LIMITS
# ------------------------------------------------------------------------------
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = Path(os.environ.get("STATIC_ROOT") or DATA_DIR / "staticfiles")
# Assets are served from the app folders (finders); collectstatic fills STATIC_ROOT in images.
STATIC_ROOT.mkdir(parents=True, exist_ok=True)
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = DEBUG

# Bodies above 1 MiB are refused with 413 before they are parsed.
DATA_UPLOAD_MAX_MEMORY_SIZE = 1024 * 1024

# ------------------------------------------------------------------------------
# SECURITY (production)
# ------------------------------------------------------------------------------
# These apply only in production: REDIS_URL set and DEBUG off. The embedded mode (`make run` over
# plain http://127.0.0.1) keeps Django's defaults: no redirect, no HSTS, no secure-only cookies.
PRODUCTION = not EMBEDDED and not DEBUG
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"
SECURE_REFERRER_POLICY = "same-origin"
if PRODUCTION:
    # Trust X-Forwarded-Proto only behind a TLS-terminating proxy that always sets it.
    if env_bool("SVERM_BEHIND_TLS_PROXY", False):
        SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = env_bool("SVERM_SECURE_COOKIES", True)
    SECURE_HSTS_SECONDS = int(os.environ.get("SVERM_HSTS_SECONDS", "31536000"))
    SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SVERM_HSTS_INCLUDE_SUBDOMAINS", True)
    # Preloading is a commitment that is hard to undo (hstspreload.org): an explicit opt-in, so
    # its absence is not a deploy warning.
    SECURE_HSTS_PRELOAD = env_bool("SVERM_HSTS_PRELOAD", False)
    if not SECURE_HSTS_PRELOAD:
        SILENCED_SYSTEM_CHECKS = ["security.W021"]
    SECURE_SSL_REDIRECT = env_bool("SVERM_SSL_REDIRECT", False)
    # Probes and Prometheus talk plain HTTP to the container (patterns match the path without
    # its leading /).
    SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$", r"^metrics$"]

# ------------------------------------------------------------------------------
# METRICS AND READINESS: Prometheus `/metrics` (sverm/metrics/) and `/readyz`'s worker check
# (sverm/health.py). PROMETHEUS_MULTIPROC_DIR, read by prometheus-client itself, turns on its
# multiprocess mode: every process (Uvicorn workers, Celery workers) writes its metrics into that
# shared directory and a scrape of any web process adds them all up (docker-compose.yml).
# ------------------------------------------------------------------------------
# `/metrics` answers a request with `Authorization: Bearer <SVERM_METRICS_TOKEN>` (compared in
# constant time; unset: no token is taken) or from a client address in SVERM_METRICS_ALLOW_IPS
# (comma-separated addresses or CIDRs; `none`: no address), the address the rate limits see
# (REMOTE_ADDR, or X-Forwarded-For with NUM_PROXIES); anything else gets 401 or 403.
SVERM_METRICS_TOKEN = os.environ.get("SVERM_METRICS_TOKEN", "")
if SVERM_METRICS_TOKEN and len(SVERM_METRICS_TOKEN) < 16:
    raise ImproperlyConfigured("SVERM_METRICS_TOKEN must be at least 16 characters long.")


def env_networks(name: str, default: list[str]) -> list[str]:
    """Comma-separated addresses or CIDRs (`none`: an empty list), normalised, or
    ImproperlyConfigured naming the entry that is neither."""
    if os.environ.get(name, "").strip().lower() == "none":
        return []
    networks = []
    for item in env_list(name, default):
        try:
            networks.append(str(ipaddress.ip_network(item, strict=False)))
        except ValueError:
            raise ImproperlyConfigured(
                f"{name}: {item!r} is not an IP address or CIDR (e.g. 10.0.0.0/8, ::1)."
            ) from None
    return networks


SVERM_METRICS_ALLOW_IPS = env_networks("SVERM_METRICS_ALLOW_IPS", ["127.0.0.1/32", "::1/128"])
# With the Celery executor, each worker records a heartbeat every SVERM_WORKER_HEARTBEAT_SECONDS
# (sverm/worker_heartbeat.py), and `/readyz` fails its `worker` check once the newest is older
# than SVERM_WORKER_HEARTBEAT_MAX_AGE_SECONDS: no worker is left to execute runs.
SVERM_WORKER_HEARTBEAT_SECONDS = float(os.environ.get("SVERM_WORKER_HEARTBEAT_SECONDS", "10"))
SVERM_WORKER_HEARTBEAT_MAX_AGE_SECONDS = float(
    os.environ.get("SVERM_WORKER_HEARTBEAT_MAX_AGE_SECONDS", "30")
)
if not 0 < SVERM_WORKER_HEARTBEAT_SECONDS < SVERM_WORKER_HEARTBEAT_MAX_AGE_SECONDS:
    raise ImproperlyConfigured(
        "SVERM_WORKER_HEARTBEAT_SECONDS must be positive and below "
        "SVERM_WORKER_HEARTBEAT_MAX_AGE_SECONDS."
    )

# ------------------------------------------------------------------------------
# LOGGING: every line carries the request id; credentials in query strings (`?token=` on
# WebSocket URLs) are redacted from every line (Daphne's access log: sverm/server.py; Uvicorn's
# loggers: sverm/uvicorn_logging.yaml, which this leaves alone).
# ------------------------------------------------------------------------------
LOG_LEVEL = os.environ.get("LOG_LEVEL", "INFO")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {
        "request_id": {"()": "sverm.api.middleware.RequestIdLogFilter"},
        "redact_query_secrets": {"()": "sverm.server.RedactQuerySecrets"},
    },
    "formatters": {
        "plain": {
            "format": "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s",
        }
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": "plain",
            "filters": ["request_id", "redact_query_secrets"],
        }
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        "django.request": {"handlers": ["console"], "level": "ERROR", "propagate": False},
        # Request lines of `manage.py runserver` (Daphne's and Django's): through the console
        # handler and its redaction only, not Django's default handlers.
        "django.server": {"handlers": ["console"], "level": "INFO", "propagate": False},
        "django.channels.server": {"handlers": ["console"], "level": "INFO", "propagate": False},
    },
}
