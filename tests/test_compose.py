"""The production deployment files (Dockerfile, .dockerignore, docker-compose.yml) fit the code.

There is no Docker engine here, so the files are parsed and checked statically: the stack's
shape (services, dependencies, healthchecks, shared configuration), Compose's variable
interpolation, and every command the containers run against what exists in the project (manage.py
subcommands, Uvicorn's options and the app it serves, its log config, the Celery app and its CLI,
the readiness route).
"""

import ast
import contextlib
import importlib
import json
import logging.config
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlparse

import click
import dj_database_url
import pytest
import yaml
from celery import Celery
from celery.app.utils import find_app
from celery.bin.base import CLIContext
from celery.bin.celery import celery as celery_cli
from celery.worker.control import Panel
from django.core.management import get_commands, load_command_class
from django.http.request import validate_host
from django.urls import resolve
from packaging.specifiers import SpecifierSet
from uvicorn.config import WS_PROTOCOLS
from uvicorn.importer import import_from_string
from uvicorn.main import main as uvicorn_cli

from sverm.server import RedactQuerySecrets

ROOT = Path(__file__).resolve().parent.parent
COMPOSE_FILE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"

APP_SERVICES = ("migrate", "web", "worker", "beat")
LONG_RUNNING = ("postgres", "redis", "web", "worker", "beat")
# What an operator must export; everything else has a default.
REQUIRED_ENV = {"POSTGRES_PASSWORD": "s3cret-pw", "SECRET_KEY": "not-a-real-key"}
# Uvicorn's logging with credentials redacted (relative to the project root, i.e. /app).
UVICORN_LOG_CONFIG = "sverm/uvicorn_logging.yaml"


# --- Compose variable interpolation ---------------------------------------------------------
class MissingVariable(Exception):
    pass


_INTERPOLATION = re.compile(
    r"\$(?:(?P<escaped>\$)"
    r"|\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}"
    r"|(?P<named>[A-Za-z_][A-Za-z0-9_]*)"
    r"|(?P<invalid>))"
)


def interpolate(value: str, env: dict[str, str]) -> str:
    """Compose's `$$`, `$VAR`, `${VAR}`, `${VAR:-default}`, `${VAR-default}`, `${VAR:?err}`."""

    def replace(match: re.Match) -> str:
        if match["escaped"]:
            return "$"
        if match["invalid"] is not None and match["braced"] is None and match["named"] is None:
            raise ValueError(f"invalid interpolation at {match.start()} in {value!r}")
        name = match["braced"] or match["named"]
        op, arg = match["op"], match["arg"]
        current = env.get(name)
        unset = current is None or (op is not None and op.startswith(":") and current == "")
        if op in (":-", "-"):
            return arg if unset else current
        if op in (":?", "?"):
            if unset:
                raise MissingVariable(f"{name}: {arg}")
            return current
        return current or ""

    return _INTERPOLATION.sub(replace, value)


def interpolated(node, env: dict[str, str]):
    if isinstance(node, str):
        return interpolate(node, env)
    if isinstance(node, list):
        return [interpolated(item, env) for item in node]
    if isinstance(node, dict):
        return {key: interpolated(item, env) for key, item in node.items()}
    return node


# --- loading the files ----------------------------------------------------------------------
def raw_compose() -> dict:
    return yaml.safe_load(COMPOSE_FILE.read_text())


def load_compose(env: dict[str, str] = REQUIRED_ENV) -> dict:
    """The file as Compose sees it with `env` exported (merge keys resolved, `${...}` filled)."""
    return interpolated(raw_compose(), env)


def environment_of(service: dict) -> dict[str, str]:
    raw = service.get("environment") or {}
    if isinstance(raw, list):
        raw = dict(item.split("=", 1) if "=" in item else (item, "") for item in raw)
    return {key: "" if value is None else str(value) for key, value in raw.items()}


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, with line continuations joined and comments dropped."""
    instructions, current = [], ""
    for raw in DOCKERFILE.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            current += line[:-1] + " "
            continue
        keyword, _, args = (current + line).partition(" ")
        instructions.append((keyword.upper(), args.strip()))
        current = ""
    assert not current, "the Dockerfile ends inside a line continuation"
    return instructions


def dockerfile_env() -> dict[str, str]:
    env = {}
    for keyword, args in dockerfile_instructions():
        if keyword == "ENV":
            for token in shlex.split(args):
                key, sep, value = token.partition("=")
                assert sep, f"ENV {args!r}: use the KEY=value form"
                env[key] = value
    return env


def dockerfile_runs() -> list[str]:
    return [args for keyword, args in dockerfile_instructions() if keyword == "RUN"]


def as_argv(command) -> list[str]:
    """An interpolated Compose command or healthcheck test, or an exec-form CMD, as its argv."""
    if isinstance(command, list):
        if command and command[0] == "CMD-SHELL":
            assert len(command) == 2, command
            return shlex.split(command[1])
        if command and command[0] == "CMD":
            command = command[1:]
        return [str(part) for part in command]
    return shlex.split(command)


def container_port(port_mapping: str) -> int:
    return int(str(port_mapping).split(":")[-1].split("/")[0])


def app_commands() -> list[tuple[str, list[str]]]:
    """Every command run in the sverm image: each service's command, each healthcheck, the CMD."""
    compose = load_compose()
    commands = []
    for name, service in compose["services"].items():
        if service.get("image") != compose["services"]["web"]["image"]:
            continue
        if "command" in service:
            commands.append((f"{name}.command", as_argv(service["command"])))
        if "healthcheck" in service:
            test = service["healthcheck"]["test"]
            commands.append((f"{name}.healthcheck", as_argv(test)))
    [cmd] = [args for keyword, args in dockerfile_instructions() if keyword == "CMD"]
    commands.append(("Dockerfile.CMD", yaml.safe_load(cmd)))
    return commands


# --- checking a command against the code ----------------------------------------------------
def check_manage_py(argv: list[str]) -> None:
    assert (ROOT / "manage.py").is_file()
    commands = get_commands()
    assert argv[2] in commands, f"manage.py has no {argv[2]!r} command"
    command = load_command_class(commands[argv[2]], argv[2])
    command.create_parser("manage.py", argv[2]).parse_args(argv[3:])


def check_python_code(code: str) -> None:
    tree = compile(code, "<healthcheck>", "exec", ast.PyCF_ONLY_AST)
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module.split(".")[0] == "sverm":
            module = importlib.import_module(node.module)
            for alias in node.names:
                assert hasattr(module, alias.name), f"{node.module} has no {alias.name}"


def uvicorn_options(argv: list[str]) -> dict:
    """Uvicorn's parsed options for `uvicorn <args>`, as the container (WORKDIR /app, the project
    copied there) resolves them: relative paths from the project root."""
    assert argv[0] == "uvicorn"
    with contextlib.chdir(ROOT):
        return uvicorn_cli.make_context("uvicorn", list(argv[1:])).params


def check_uvicorn(argv: list[str]) -> None:
    options = uvicorn_options(argv)
    application = import_from_string(options["app"])
    assert application is importlib.import_module("sverm.asgi").application
    assert options["host"] == "0.0.0.0", "Uvicorn must listen on every interface in the container"
    # Streams need a WebSocket protocol that is installed: importing it is what Uvicorn does.
    assert options["ws"] not in ("none", "auto"), "name the WebSocket protocol, so it must exist"
    import_from_string(WS_PROTOCOLS[options["ws"]])
    assert options["lifespan"] == "off", "Channels' router refuses the lifespan scope"
    assert options["access_log"], "the access log (redacted) stays on"
    assert options["timeout_graceful_shutdown"], "unbounded, Docker's SIGKILL would cut it short"
    assert options["log_config"] == UVICORN_LOG_CONFIG
    check_uvicorn_log_config(ROOT / options["log_config"])


def check_uvicorn_log_config(path: Path) -> None:
    """Every handler a `uvicorn.*` record reaches redacts credentials in query strings."""
    config = yaml.safe_load(path.read_text())
    assert config["disable_existing_loggers"] is False, "it would silence Django's loggers"
    resolve_name = logging.config.BaseConfigurator({}).resolve  # as dictConfig reads "()"
    filters = {name: resolve_name(spec["()"]) for name, spec in config["filters"].items()}
    loggers = config["loggers"]
    assert {"uvicorn", "uvicorn.error", "uvicorn.access"} <= set(loggers)
    for name in loggers:
        if not name.startswith("uvicorn"):
            continue
        # A record climbs to the parents' handlers unless a logger stops it.
        chain = [name]
        while loggers.get(chain[-1], {}).get("propagate", True) and "." in chain[-1]:
            chain.append(chain[-1].rsplit(".", 1)[0])
        handlers = [h for step in chain for h in loggers.get(step, {}).get("handlers", [])]
        assert handlers, f"{name} reaches no handler of this config (the root's is not redacted)"
        for handler in handlers:
            names = config["handlers"][handler].get("filters", [])
            assert RedactQuerySecrets in [filters[f] for f in names], f"{handler} does not redact"


def celery_app_and_subcommand(argv: list[str]) -> tuple[Celery, str, list[str]]:
    assert argv[1] in ("-A", "--app"), f"{argv}: pass the app with -A first"
    app = find_app(argv[2])
    return app, argv[3], argv[4:]


def check_celery(argv: list[str]) -> None:
    app, subcommand, rest = celery_app_and_subcommand(argv)
    assert isinstance(app, Celery)
    # Beat's app is Celery's configuration without Django's apps (sverm/beat.py).
    assert (
        app is importlib.import_module("sverm.beat" if subcommand == "beat" else "sverm.celery").app
    )
    assert subcommand in celery_cli.commands, f"celery has no {subcommand!r} command"
    parent = click.Context(celery_cli, info_name="celery")
    parent.obj = CLIContext(app=app, no_color=True, workdir=None, quiet=True)
    ctx = celery_cli.commands[subcommand].make_context(subcommand, list(rest), parent=parent)
    if subcommand in ("inspect", "control"):
        # The remote command the workers' control panel must know, e.g. `inspect ping`.
        action = ctx.params["command"]
        assert action in Panel.meta, f"workers have no {action!r} remote command"
        assert Panel.meta[action].type == subcommand


def check_argv(argv: list[str]) -> None:
    program = argv[0]
    if program == "python" and argv[1] == "manage.py":
        check_manage_py(argv)
    elif program == "python" and argv[1] == "-c":
        check_python_code(argv[2])
    elif program == "uvicorn":
        check_uvicorn(argv)
    elif program == "celery":
        check_celery(argv)
    else:
        pytest.fail(f"unrecognised program in {argv}")


# --- the stack's shape ----------------------------------------------------------------------
def test_services_exist():
    services = load_compose()["services"]
    assert set(LONG_RUNNING) | {"migrate"} <= set(services)


@pytest.mark.parametrize("name", [*LONG_RUNNING])
def test_long_running_services_have_healthchecks_and_restart(name):
    service = load_compose()["services"][name]
    test = service["healthcheck"]["test"]
    assert isinstance(test, list) and test[0] in ("CMD", "CMD-SHELL"), test
    assert service["restart"] == "unless-stopped"


def test_backing_service_healthchecks():
    services = load_compose()["services"]
    assert services["postgres"]["image"].startswith("postgres:16")
    assert "pg_isready" in " ".join(services["postgres"]["healthcheck"]["test"])
    assert services["redis"]["image"].startswith("redis:7")
    assert services["redis"]["healthcheck"]["test"][-2:] == ["redis-cli", "ping"]


def test_app_services_share_image_build_and_environment():
    compose = load_compose()
    services = compose["services"]
    shared = compose["x-app"]
    for name in APP_SERVICES:
        assert services[name]["image"] == shared["image"] == "sverm:latest", name
        assert services[name]["build"] == shared["build"], name
        assert environment_of(services[name]) == environment_of(shared), name
        assert services[name]["volumes"] == shared["volumes"], name
    assert {"DATABASE_URL", "REDIS_URL", "SECRET_KEY"} <= set(environment_of(shared))
    assert (ROOT / shared["build"] / "Dockerfile").is_file()


def test_migrate_is_one_shot_and_waits_for_postgres():
    migrate = load_compose()["services"]["migrate"]
    assert as_argv(migrate["command"])[1:3] == ["manage.py", "migrate"]
    assert "--noinput" in as_argv(migrate["command"])
    # Restarting a one-shot would rerun it forever and web would never see it complete.
    assert migrate["restart"] == "no"
    assert "healthcheck" not in migrate
    assert migrate["depends_on"]["postgres"]["condition"] == "service_healthy"


def test_web_waits_for_migrations_and_redis():
    depends_on = load_compose()["services"]["web"]["depends_on"]
    assert depends_on["migrate"]["condition"] == "service_completed_successfully"
    assert depends_on["redis"]["condition"] == "service_healthy"


def test_dependency_conditions_can_be_met():
    services = load_compose()["services"]
    for name, service in services.items():
        for target, spec in (service.get("depends_on") or {}).items():
            assert target in services, f"{name} depends on unknown {target}"
            if spec["condition"] == "service_healthy":
                assert "healthcheck" in services[target], f"{name} waits on {target}'s health"
            elif spec["condition"] == "service_completed_successfully":
                assert services[target]["restart"] == "no", f"{target} must be one-shot"


def test_named_volumes_are_declared():
    compose = load_compose()
    declared = set(compose["volumes"])
    mounts = {
        mount.split(":")[0]
        for service in compose["services"].values()
        for mount in service.get("volumes", [])
    }
    named = {source for source in mounts if not source.startswith((".", "/", "~"))}
    assert named, "no named volumes mounted"
    assert named <= declared
    postgres_mounts = load_compose()["services"]["postgres"]["volumes"]
    assert any(m.endswith(":/var/lib/postgresql/data") for m in postgres_mounts)


# --- interpolation and the environment the app sees -----------------------------------------
@pytest.mark.parametrize("missing", sorted(REQUIRED_ENV))
def test_secrets_have_no_defaults(missing):
    unset = {key: value for key, value in REQUIRED_ENV.items() if key != missing}
    for env in (unset, {**REQUIRED_ENV, missing: ""}):
        with pytest.raises(MissingVariable, match=missing):
            load_compose(env)


def test_app_environment_points_at_the_compose_services():
    compose = load_compose()
    services = compose["services"]
    env = environment_of(compose["x-app"])

    database = dj_database_url.parse(env["DATABASE_URL"])
    assert database["ENGINE"] == "django.db.backends.postgresql"
    assert database["HOST"] in services
    assert services[database["HOST"]]["image"].startswith("postgres:")
    postgres_env = environment_of(services[database["HOST"]])
    assert database["PASSWORD"] == postgres_env["POSTGRES_PASSWORD"] == "s3cret-pw"
    assert database["USER"] == postgres_env["POSTGRES_USER"]
    assert database["NAME"] == postgres_env["POSTGRES_DB"]

    redis = urlparse(env["REDIS_URL"])
    assert redis.scheme == "redis"
    assert redis.hostname in services
    assert services[redis.hostname]["image"].startswith("redis:")

    assert env["SECRET_KEY"] == "not-a-real-key"
    assert env["DEBUG"] in ("0", "false", "False")
    assert "OPENAI_API_KEY" in env and env["OPENAI_API_KEY"] == ""
    overridden = load_compose({**REQUIRED_ENV, "OPENAI_API_KEY": "sk-x"})
    assert environment_of(overridden["services"]["worker"])["OPENAI_API_KEY"] == "sk-x"


def test_worker_concurrency_defaults_and_overrides():
    def concurrency(env):
        argv = as_argv(load_compose(env)["services"]["worker"]["command"])
        [value] = [arg.split("=", 1)[1] for arg in argv if arg.startswith("--concurrency=")]
        return int(value)

    assert concurrency(REQUIRED_ENV) == 100
    # Thread slots that wait on the process's run host: one process, many runs (benchmark 5).
    assert "--pool=threads" in as_argv(load_compose()["services"]["worker"]["command"])
    assert concurrency({**REQUIRED_ENV, "SVERM_WORKER_CONCURRENCY": "9"}) == 9


# --- every command refers to something that exists ------------------------------------------
COMMANDS = app_commands()


@pytest.mark.parametrize(("where", "argv"), COMMANDS, ids=[where for where, _ in COMMANDS])
def test_command_refers_to_existing_code(where, argv):
    check_argv(argv)


def test_every_role_is_run():
    by_where = dict(COMMANDS)
    assert by_where["migrate.command"][:3] == ["python", "manage.py", "migrate"]
    assert by_where["web.command"][:2] == ["uvicorn", "sverm.asgi:application"]
    assert by_where["worker.command"][:4] == ["celery", "-A", "sverm", "worker"]
    assert by_where["beat.command"][:4] == ["celery", "-A", "sverm.beat", "beat"]


def test_web_healthcheck_hits_readyz_on_the_served_port():
    services = load_compose()["services"]
    web = services["web"]
    argv = as_argv(web["healthcheck"]["test"])
    assert argv[:2] == ["python", "-c"], "the slim image has no curl"
    [url] = re.findall(r"https?://[^'\"\s]+", argv[2])
    url = urlparse(url)

    match = resolve(url.path)
    assert match.url_name == "readyz"

    port = uvicorn_options(as_argv(web["command"]))["port"]
    assert url.port == port
    assert [container_port(p) for p in web["ports"]] == [port]

    # Django answers 400 to a Host it does not allow, which would keep web unhealthy forever.
    env = environment_of(services["web"])
    allowed = [host.strip() for host in env["ALLOWED_HOSTS"].split(",") if host.strip()]
    assert "localhost" in allowed
    assert validate_host(url.hostname, allowed)


def test_web_workers_default_to_the_cores_measured_and_override():
    def workers(env):
        return uvicorn_options(as_argv(load_compose(env)["services"]["web"]["command"]))["workers"]

    assert workers(REQUIRED_ENV) == 2  # bench/results/latest.md, benchmark 8, on 2 cores
    assert workers({**REQUIRED_ENV, "WEB_CONCURRENCY": "5"}) == 5
    # The image's own CMD takes the same variable (Uvicorn reads it when --workers is absent).
    assert int(dockerfile_env()["WEB_CONCURRENCY"]) == workers(REQUIRED_ENV)
    assert uvicorn_options(dict(COMMANDS)["Dockerfile.CMD"])["workers"] is None


def test_web_trusts_proxy_headers_only_from_configured_addresses():
    def trusted(env):
        argv = as_argv(load_compose(env)["services"]["web"]["command"])
        return uvicorn_options(argv)["forwarded_allow_ips"]

    assert trusted(REQUIRED_ENV) == "127.0.0.1"  # nothing outside the container
    assert trusted({**REQUIRED_ENV, "FORWARDED_ALLOW_IPS": "172.16.0.0/12"}) == "172.16.0.0/12"


def test_web_shuts_down_before_docker_kills_it():
    web = load_compose()["services"]["web"]
    graceful = uvicorn_options(as_argv(web["command"]))["timeout_graceful_shutdown"]
    grace = web["stop_grace_period"]
    assert re.fullmatch(r"\d+s", grace), grace
    # Uvicorn needs its timeout plus the moments to close sockets and stop its workers.
    assert graceful + 5 <= int(grace[:-1])


def test_web_keeps_idle_connections_longer_than_a_proxy():
    for where in ("web.command", "Dockerfile.CMD"):
        assert uvicorn_options(dict(COMMANDS)[where])["timeout_keep_alive"] > 60, where


def test_dockerfile_cmd_is_the_compose_web_server():
    compose = uvicorn_options(dict(COMMANDS)["web.command"])
    image = uvicorn_options(dict(COMMANDS)["Dockerfile.CMD"])
    # Only what Compose fills from the operator's environment differs.
    filled_by_compose = {"workers", "forwarded_allow_ips"}
    differing = {name for name in compose if compose[name] != image[name]}
    assert differing == filled_by_compose


def test_runs_execute_on_celery_under_compose(tmp_path):
    """Uvicorn starts nothing but the app: with compose's environment the settings pick the
    Celery executor and the Redis channel layer, so no worker process needs an in-process
    executor or reaper (`python -m sverm.server` starts those for the embedded mode)."""
    compose = load_compose()
    env = {
        **dockerfile_env(),
        **environment_of(compose["services"]["web"]),
        "SVERM_DATA_DIR": str(tmp_path),
        "STATIC_ROOT": str(tmp_path / "static"),
        "DJANGO_SETTINGS_MODULE": "sverm.settings",
        "PATH": os.environ.get("PATH", ""),
    }
    code = (
        "from django.conf import settings; "
        "print(settings.SVERM_EXECUTOR, settings.CHANNEL_LAYERS['default']['BACKEND'])"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
        timeout=60, check=True,
    )  # fmt: skip
    assert result.stdout.split() == ["celery", "channels_redis.core.RedisChannelLayer"]


def test_worker_healthcheck_pings_this_worker():
    worker = load_compose()["services"]["worker"]
    command = as_argv(worker["command"])
    ping = as_argv(worker["healthcheck"]["test"])
    assert worker["healthcheck"]["test"][0] == "CMD-SHELL", "$HOSTNAME needs a shell"
    assert ping[3:5] == ["inspect", "ping"]
    # The worker keeps Celery's default node name, celery@<container hostname>.
    assert not {"-n", "--hostname"} & set(command)
    assert ping[ping.index("-d") + 1] == "celery@$HOSTNAME"
    assert {"-t", "--timeout"} & set(ping)


def test_beat_schedule_lives_on_the_data_volume():
    beat = load_compose()["services"]["beat"]
    argv = as_argv(beat["command"])
    schedule = Path(argv[argv.index("--schedule") + 1])
    data_dir = Path(dockerfile_env()["SVERM_DATA_DIR"])
    assert data_dir in schedule.parents
    assert f"{data_dir}" in [mount.split(":")[1] for mount in beat["volumes"]]
    # The healthcheck looks for the same schedule file.
    assert f"'{schedule}*'" in as_argv(beat["healthcheck"]["test"])[2]


# --- the `monitoring` profile: Prometheus and Grafana ---------------------------------------
MONITORING = ("prometheus", "grafana")
DEPLOY = ROOT / "deploy"
DASHBOARD = DEPLOY / "grafana" / "dashboards" / "sverm.json"


def bind_mounts(service: dict) -> dict[str, Path]:
    """Container path -> the project's file or folder, for the service's relative bind mounts."""
    found = {}
    for mount in service.get("volumes", []):
        source, target = mount.split(":")[:2]
        if source.startswith("."):
            found[target] = (ROOT / source).resolve()
    return found


def option(argv: list[str], name: str) -> str:
    [value] = [arg.split("=", 1)[1] for arg in argv if arg.startswith(f"{name}=")]
    return value


def test_monitoring_runs_only_with_its_profile():
    services = load_compose()["services"]
    for name in MONITORING:
        service = services[name]
        assert service["profiles"] == ["monitoring"], name
        assert service["restart"] == "unless-stopped", name
        assert service["healthcheck"]["test"][0] == "CMD", name
        # Published on the host's loopback only: neither has sverm's access rules.
        assert all(str(port).startswith("127.0.0.1:") for port in service["ports"]), name
    # `docker compose up` without the profile starts what it always did.
    assert {name for name, service in services.items() if "profiles" in service} == set(MONITORING)


def test_app_processes_share_an_in_memory_metrics_directory():
    compose = load_compose()
    shared = compose["x-app"]
    directory = environment_of(shared)["PROMETHEUS_MULTIPROC_DIR"]
    [volume] = [m.split(":")[0] for m in shared["volumes"] if m.split(":")[1] == directory]
    options = compose["volumes"][volume]["driver_opts"]
    assert options["type"] == "tmpfs"
    # Writable by the image's unprivileged user (test_app_services_share_... gives it to all).
    [uid] = re.findall(r"--uid (\d+)", " ".join(dockerfile_runs()))
    assert f"uid={uid}" in options["o"].split(",")


def test_prometheus_scrapes_webs_metrics_with_the_token():
    compose = load_compose()
    services = compose["services"]
    prometheus, web = services["prometheus"], services["web"]
    config_path = option(as_argv(prometheus["command"]), "--config.file")
    config_file = bind_mounts(prometheus)[config_path]
    assert config_file == DEPLOY / "prometheus" / "prometheus.yml"
    [job] = yaml.safe_load(config_file.read_text())["scrape_configs"]
    assert resolve(job["metrics_path"]).url_name == "metrics"
    [[target]] = [group["targets"] for group in job["static_configs"]]
    host, port = target.split(":")
    assert host == "web" and int(port) == uvicorn_options(as_argv(web["command"]))["port"]
    assert "web" in prometheus["depends_on"]
    # Django answers a Host it does not allow with 400: Prometheus' must be allowed.
    env = environment_of(web)
    assert validate_host(host, [item.strip() for item in env["ALLOWED_HOSTS"].split(",")])
    # The token: one variable gives web its setting and Prometheus the file it reads.
    assert job["authorization"]["type"] == "Bearer"
    [secret] = prometheus["secrets"]
    assert job["authorization"]["credentials_file"] == f"/run/secrets/{secret}"
    assert compose["secrets"][secret] == {"environment": "SVERM_METRICS_TOKEN"}
    assert env["SVERM_METRICS_TOKEN"] == ""
    token = {**REQUIRED_ENV, "SVERM_METRICS_TOKEN": "t" * 32}
    assert environment_of(load_compose(token)["services"]["web"])["SVERM_METRICS_TOKEN"] == "t" * 32


def test_grafana_provisions_prometheus_and_the_dashboard():
    services = load_compose()["services"]
    grafana = services["grafana"]
    mounts = bind_mounts(grafana)
    provisioning = mounts["/etc/grafana/provisioning"]
    assert provisioning == DEPLOY / "grafana" / "provisioning"
    [source] = yaml.safe_load((provisioning / "datasources" / "prometheus.yml").read_text())[
        "datasources"
    ]
    prometheus_port = container_port(services["prometheus"]["ports"][0])
    assert source["type"] == "prometheus"
    assert source["url"] == f"http://prometheus:{prometheus_port}"
    [provider] = yaml.safe_load((provisioning / "dashboards" / "sverm.yml").read_text())[
        "providers"
    ]
    folder = provider["options"]["path"]
    assert mounts[folder] == DASHBOARD.parent
    home = environment_of(grafana)["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert home == f"{folder}/{DASHBOARD.name}"
    dashboard = json.loads(DASHBOARD.read_text())
    panels = [panel for panel in dashboard["panels"] if panel["type"] != "row"]
    assert panels
    for panel in panels:
        assert panel["datasource"]["uid"] == source["uid"], panel["title"]
        assert all(target["datasource"]["uid"] == source["uid"] for target in panel["targets"])


def dashboard_queries() -> list[str]:
    dashboard = json.loads(DASHBOARD.read_text())
    return [target["expr"] for panel in dashboard["panels"] for target in panel.get("targets", [])]


def test_the_dashboard_queries_what_sverm_exports_and_shows_all_of_it():
    from sverm.metrics.exposition import exported_series

    exported = exported_series()
    queried = {name for expr in dashboard_queries() for name in re.findall(r"\bsverm_\w+", expr)}
    every_series = set().union(*exported.values())
    assert queried <= every_series, f"not exported by sverm: {sorted(queried - every_series)}"
    unshown = sorted(metric for metric, series in exported.items() if not series & queried)
    assert not unshown, f"exported but on no panel: {unshown}"


# --- Dockerfile and .dockerignore -----------------------------------------------------------
def test_dockerfile_base_image_satisfies_requires_python():
    [base] = [args for keyword, args in dockerfile_instructions() if keyword == "FROM"]
    assert base == "python:3.11-slim"
    requires = re.search(r'requires-python\s*=\s*"([^"]+)"', (ROOT / "pyproject.toml").read_text())
    assert SpecifierSet(requires[1]).contains(base.split(":")[1].split("-")[0])


def test_dockerfile_installs_the_project_and_runs_unprivileged():
    runs = dockerfile_runs()
    assert any(re.search(r"\bpip install \.(\s|$)", run) for run in runs)
    users = [args for keyword, args in dockerfile_instructions() if keyword == "USER"]
    assert users, "the image runs as root"
    user = users[-1].split(":")[0]
    assert user not in ("root", "0")
    # The runtime user owns the data dir (beat's schedule, a fresh named volume's owner).
    data_dir = dockerfile_env()["SVERM_DATA_DIR"]
    assert any(
        re.search(rf"\bchown\s+{re.escape(user)}\b", run) and data_dir in run for run in runs
    )


def test_dockerfile_env():
    env = dockerfile_env()
    assert env["SVERM_DATA_DIR"] == "/data"
    assert env["STATIC_ROOT"] == "/app/staticfiles"
    assert "SECRET_KEY" not in env, "a secret baked into the image"


def test_dockerfile_collects_static_with_a_build_only_key():
    [run] = [run for run in dockerfile_runs() if "collectstatic" in run]
    tokens = shlex.split(run)
    assignments = {}
    while tokens and "=" in tokens[0] and not tokens[0].startswith("-"):
        key, _, value = tokens.pop(0).partition("=")
        assignments[key] = value
    assert tokens == ["python", "manage.py", "collectstatic", "--noinput"]
    check_manage_py(tokens)
    # Without SECRET_KEY the settings would generate one into the image's data dir.
    assert assignments.get("SECRET_KEY")
    assert "REDIS_URL" not in assignments and "DATABASE_URL" not in assignments


def test_dockerfile_exposes_the_web_port():
    exposed = [args for keyword, args in dockerfile_instructions() if keyword == "EXPOSE"]
    web = load_compose()["services"]["web"]
    assert [int(port.split("/")[0]) for port in " ".join(exposed).split()] == [
        container_port(p) for p in web["ports"]
    ]


def test_dockerignore_keeps_local_state_out():
    patterns = {
        line.strip()
        for line in DOCKERIGNORE.read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    assert {".venv", ".git", "*.sqlite3", ".secret_key", "staticfiles"} <= patterns
    assert {"__pycache__", "**/__pycache__", ".pytest_cache"} & patterns


# --- the interpolation helper itself --------------------------------------------------------
@pytest.mark.parametrize(
    ("template", "env", "expected"),
    [
        ("a-${X:-d}", {}, "a-d"),
        ("a-${X:-d}", {"X": ""}, "a-d"),
        ("a-${X-d}", {"X": ""}, "a-"),
        ("${X:?boom}", {"X": "v"}, "v"),
        ("$$HOSTNAME ${X}", {"X": "v"}, "$HOSTNAME v"),
    ],
)
def test_interpolate(template, env, expected):
    assert interpolate(template, env) == expected


def test_interpolate_rejects_missing_and_malformed():
    with pytest.raises(MissingVariable):
        interpolate("${X:?boom}", {"X": ""})
    with pytest.raises(ValueError):
        interpolate("cost: $5", {})
