"""`sverm`, the command line of sverm: log in, start runs under a budget and follow them live."""

from __future__ import annotations

import contextlib
import itertools
import os
import re
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import click
from rich.markdown import Markdown
from rich.table import Column, Table

from . import Client, errors
from .cli_config import SavedAuth, auth_load, auth_path, auth_remove, auth_save
from .cli_follow import follow_run
from .cli_output import (
    id_column,
    money,
    print_error,
    print_json,
    spent,
    stderr_console,
    stdout_console,
    when,
)

# --- exit codes ----------------------------------------------------------------------------------
EXIT_OK = 0  # done; a followed or waited-for run completed
EXIT_RUN_FAILED = 1  # the run failed (or another error the codes below do not name)
EXIT_USAGE = 2  # bad arguments (ours, or the server's 400/422 about them)
EXIT_BUDGET = 3  # 422 budget_exceeded, or a run that failed with error code budget_exceeded
EXIT_CANCELLED = 4  # the run was cancelled
EXIT_AUTH = 5  # 401/403, or not logged in
EXIT_NOT_FOUND = 6  # 404
EXIT_TIMEOUT = 7  # `runs wait` timed out (or the run stopped to wait for an operator)
EXIT_SERVER = 8  # 5xx, 429 after retries, or the server could not be reached
EXIT_INTERRUPTED = 130  # Ctrl-C

DEFAULT_URL = "http://127.0.0.1:8000"
MONTH = re.compile(r"^\d{4}-(0[1-9]|1[0-2])$")
DEFINITION_SUFFIXES = {".yaml", ".yml", ".json"}


class NotLoggedIn(Exception):
    """No credential for the server: neither --api-key, SVERM_API_KEY nor a saved login."""


# --- global options ------------------------------------------------------------------------------
@dataclass
class Options:
    """--url, --api-key and --json, given before the command or after it."""

    url: str | None = None
    api_key: str | None = None
    json: bool = False


def _remember(ctx: click.Context, param: click.Parameter, value: Any) -> None:
    if value not in (None, False):
        setattr(ctx.find_root().ensure_object(Options), param.name or "", value)


def global_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """The options every command takes (`sverm --json runs list` = `sverm runs list --json`)."""
    decorators = [
        click.option("--url", metavar="URL", expose_value=False, callback=_remember,
                     help=f"Server URL (env SVERM_URL, else the saved one, else {DEFAULT_URL})."),
        click.option("--api-key", metavar="KEY", expose_value=False, callback=_remember,
                     help="API key to use instead of the saved login (env SVERM_API_KEY)."),
        click.option("--json", is_flag=True, expose_value=False, callback=_remember,
                     help="Machine output: one JSON document on stdout."),
    ]  # fmt: skip
    for decorate in decorators:
        command = decorate(command)
    return command


def options() -> Options:
    return click.get_current_context().find_root().ensure_object(Options)


def base_url(saved: SavedAuth | None) -> str:
    url = options().url or os.environ.get("SVERM_URL") or (saved.base_url if saved else None)
    return (url or DEFAULT_URL).rstrip("/")


def explicit_api_key() -> str | None:
    return options().api_key or os.environ.get("SVERM_API_KEY") or None


@contextlib.contextmanager
def session() -> Iterator[Any]:
    """A client for the command: --api-key/SVERM_API_KEY, else the saved login if it is for
    this server (credentials are never sent to another one). Tokens the client refreshed are
    saved again."""
    saved = auth_load()
    url = base_url(saved)
    same_server = saved is not None and saved.base_url.rstrip("/") == url
    if key := explicit_api_key():
        client = new_client(url, api_key=key)
    elif saved is not None and same_server and saved.api_key:
        client = new_client(url, api_key=saved.api_key)
    elif saved is not None and same_server and (saved.access or saved.refresh):
        client = new_client(
            url, token=saved.access, refresh_token=saved.refresh, workspace=saved.workspace
        )
    elif saved is not None and saved.has_credentials:
        raise NotLoggedIn(f"not logged in to {url} (the saved login is for {saved.base_url})")
    else:
        raise NotLoggedIn("not logged in: run `sverm login`, or pass --api-key")
    try:
        yield client
    finally:
        if saved is not None and same_server and not saved.api_key and not explicit_api_key():
            _save_refreshed(saved, client.credentials)
        client.close()


def new_client(url: str, **credentials: Any) -> Client:
    try:
        return Client(url, **credentials)
    except ValueError as error:  # not an http(s) URL
        raise click.BadParameter(str(error), param_hint="--url") from error


def _save_refreshed(saved: SavedAuth, credentials: Any) -> None:
    access, refresh = credentials.access, credentials.refresh
    if (access, refresh) != (saved.access, saved.refresh) and (access or refresh):
        auth_save(
            SavedAuth(saved.base_url, access, refresh or saved.refresh, None, saved.workspace)
        )


# --- arguments -----------------------------------------------------------------------------------
class Money(click.ParamType):
    """A positive USD amount read as Decimal ("2.50"), never through float."""

    name = "USD"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None):
        if isinstance(value, Decimal):
            return value
        text = str(value).strip().removeprefix("$")
        try:
            amount = Decimal(text)
        except InvalidOperation:
            self.fail(f"{value!r} is not an amount of USD (e.g. 2.50)", param, ctx)
        if not amount.is_finite() or amount <= 0:
            self.fail(f"{value!r} is not a positive amount of USD", param, ctx)
        return amount


def check_month(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    if value is not None and not MONTH.match(value):
        raise click.BadParameter(f"{value!r} is not a month as YYYY-MM", ctx, param)
    return value


def run_exit_code(run: Any) -> int:
    if run.status == "completed":
        return EXIT_OK
    if run.status == "cancelled":
        return EXIT_CANCELLED
    if run.status == "failed":
        return EXIT_BUDGET if run.error_code == "budget_exceeded" else EXIT_RUN_FAILED
    return EXIT_OK


def exit_code_for(error: Exception) -> int:
    """The exit code for an error the SDK raised."""
    table: list[tuple[type[Exception], int]] = [
        (errors.WaitTimeout, EXIT_TIMEOUT),
        (errors.BudgetExceededError, EXIT_BUDGET),
        (errors.AuthenticationError, EXIT_AUTH),
        (errors.PermissionDeniedError, EXIT_AUTH),
        (errors.NotFoundError, EXIT_NOT_FOUND),
        (errors.ValidationError, EXIT_USAGE),
        (errors.UnprocessableError, EXIT_USAGE),
        (errors.RateLimitError, EXIT_SERVER),
        (errors.ServerError, EXIT_SERVER),
        (errors.TransportError, EXIT_SERVER),
    ]
    for kind, code in table:
        if isinstance(error, kind):
            return code
    return EXIT_RUN_FAILED


# --- the commands --------------------------------------------------------------------------------
CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


@click.group(context_settings=CONTEXT)
@global_options
def app() -> None:
    """sverm: run budgeted LLM agent swarms from the command line.

    Log in once (`sverm login`), then e.g. `sverm run research-swarm-v1 "Hydrogen in Norway"
    --budget 2.50 --follow`.
    """


@app.command()
@click.option("--email", help="Account email (prompted for when missing).")
@click.option("--password", help="Password (prompted for, hidden, when missing).")
@click.option("--workspace", metavar="WSP", help="Workspace id or name to act in with /v1.")
@global_options
def login(email: str | None, password: str | None, workspace: str | None) -> int:
    """Log in with email and password (or --api-key) and save the credentials."""
    url = base_url(auth_load())
    key = options().api_key or (None if email else os.environ.get("SVERM_API_KEY"))
    if key:
        client = new_client(url, api_key=key)
    else:
        new_client(url).close()  # the URL checked before asking anything
        email = email or click.prompt("Email", err=True)
        password = password or click.prompt("Password", hide_input=True, err=True)
        client = Client.login(url, email, password)
    with client:
        # Also proves the credential works before it is saved (a wrong key is a 401 here).
        workspaces = client.workspaces.list()
        workspace_id = _workspace_id(workspaces, workspace)
        credentials = client.credentials
        path = auth_save(
            SavedAuth(
                base_url=url,
                access=None if key else credentials.access,
                refresh=None if key else credentials.refresh,
                api_key=key,
                workspace=workspace_id,
            )
        )
    if options().json:
        print_json(
            {"base_url": url, "auth": "api_key" if key else "password", "email": email,
             "workspace": workspace_id, "config": str(path)}
        )  # fmt: skip
    else:
        who = f"with API key {key[:13]}…" if key else f"as {email}"
        stderr_console().print(f"Logged in to {url} {who}; saved in {path}", soft_wrap=True)
    return EXIT_OK


def _workspace_id(workspaces: list[Any], wanted: str | None) -> str | None:
    """The id of the workspace named by id or name (checked: one the caller is a member of)."""
    if not wanted:
        return None
    for workspace in workspaces:
        if wanted in (workspace.id, workspace.name):
            return workspace.id
    raise click.BadParameter(f"no workspace {wanted!r} among yours", param_hint="--workspace")


@app.command()
@global_options
def logout() -> int:
    """Forget the saved login."""
    path = auth_path()
    removed = auth_remove()
    if options().json:
        print_json({"logged_out": removed, "config": str(path)})
    else:
        stderr_console().print(f"Logged out (removed {path})." if removed else "Not logged in.")
    return EXIT_OK


@app.command()
@click.argument("template_id", required=False)
@global_options
def templates(template_id: str | None) -> int:
    """List the templates, or print one's YAML definition."""
    with session() as client:
        if template_id:
            text = client.templates.get(template_id)
            if options().json:
                print_json({"id": template_id, "yaml": text})
            else:
                sys.stdout.write(text if text.endswith("\n") else text + "\n")
            return EXIT_OK
        items = client.templates.list()
    if options().json:
        print_json([item.raw for item in items])
        return EXIT_OK
    table = Table(
        id_column("ID", [i.id for i in items]), "Name", "Topology", "Estimated cost", "Description"
    )
    for item in items:
        table.add_row(
            item.id, item.name, item.topology, item.estimated_cost_range, item.description
        )
    stdout_console().print(table)
    return EXIT_OK


@app.command()
@click.argument("template_or_file")
@click.argument("task")
@click.option("--budget", type=Money(), help="Hard budget in USD, e.g. 2.50.")
@click.option("--follow", "-f", is_flag=True, help="Show live progress, then the result.")
@click.option("--idempotency-key", metavar="KEY", help="Makes a retried start start one run.")
@global_options
def run(
    template_or_file: str,
    task: str,
    budget: Decimal | None,
    follow: bool,
    idempotency_key: str | None,
) -> int:
    """Start a run of TEMPLATE_OR_FILE (a template id, or a YAML/JSON definition file) on TASK."""
    source = _template_or_definition(template_or_file)
    with session() as client:
        created = client.runs.create(
            task, **source, max_budget_usd=budget, idempotency_key=idempotency_key
        )
        if not follow:
            if options().json:
                print_json(created.raw)
            else:
                click.echo(created.id)
                stderr_console().print(
                    f"Started {created.id} ({created.status}, estimated "
                    f"{money(created.estimated_cost_usd)}). "
                    f"Follow it: sverm runs follow {created.id}",
                    soft_wrap=True,
                )
            return EXIT_OK
        return _follow_and_show(client, created.id)


def _template_or_definition(value: str) -> dict[str, str]:
    path = Path(value).expanduser()
    if path.is_file():
        try:
            return {"definition": path.read_text(encoding="utf-8")}
        except (OSError, UnicodeDecodeError) as error:
            raise click.BadParameter(f"cannot read {value}: {error}") from error
    if path.suffix.lower() in DEFINITION_SUFFIXES or os.sep in value:
        raise click.BadParameter(f"no such file: {value}", param_hint="TEMPLATE_OR_FILE")
    return {"template": value}


def _follow_and_show(client: Any, run_id: str) -> int:
    followed = follow_run(client, run_id, quiet=options().json)
    if followed.interrupted:
        if options().json:
            print_json(followed.run.raw)
        return EXIT_INTERRUPTED
    result = client.runs.result(run_id)
    if options().json:
        print_json(result.raw)
    else:
        show_result(followed.run, result)
    return run_exit_code(followed.run)


def show_result(run: Any, result: Any, *, per_agent: bool = False) -> None:
    """The result's markdown (rendered on a terminal, as is otherwise), then what it cost."""
    console = stdout_console()
    output = result.output
    if console.is_terminal:
        console.print(Markdown(output))
    elif output:
        sys.stdout.write(output if output.endswith("\n") else output + "\n")
    agents = result.cost_report.get("agents") or []
    if per_agent and agents:
        table = Table("Agent", "Model", "Tokens in", "Tokens out", "Cost", title="Cost report")
        for agent in agents:
            table.add_row(
                str(agent.get("agent_id")), str(agent.get("model")), str(agent.get("tokens_in")),
                str(agent.get("tokens_out")), money(agent.get("cost_usd")),
            )  # fmt: skip
        console.print(table)
    elapsed = result.elapsed_seconds
    parts = [
        f"Run {run.id} {run.status}",
        f"cost {spent(run.cost_usd, run.max_budget_usd)}",
        f"{len(agents)} agents" if agents else None,
        f"{elapsed:.1f} s" if elapsed is not None else None,
    ]
    console.print(" · ".join(part for part in parts if part), soft_wrap=True, markup=False)
    if run.status == "failed":
        print_error(f"run failed: {run.error_message or run.error_code}", code=run.error_code)


# --- runs ----------------------------------------------------------------------------------------
@app.group()
@global_options
def runs() -> None:
    """List, inspect, follow, wait for and cancel runs."""


@runs.command("list")
@click.option("--status", help="Only runs with this status (queued, running, completed...).")
@click.option("--limit", type=click.IntRange(1, 1000), default=20, show_default=True)
@global_options
def runs_list(status: str | None, limit: int) -> int:
    """The workspace's runs, newest first."""
    with session() as client:
        items = list(itertools.islice(client.runs.list(status=status, limit=limit), limit))
    if options().json:
        print_json([item.raw for item in items])
        return EXIT_OK
    table = Table(
        id_column("ID", [i.id for i in items]), Column("Status", no_wrap=True),
        "Template / swarm", Column("Cost / budget", no_wrap=True), "Created", "Task",
    )  # fmt: skip
    for item in items:
        table.add_row(
            item.id, item.status, item.template or item.swarm_id or "definition",
            spent(item.cost_usd, item.max_budget_usd), when(item.created_at),
            _short(item.task, 40),
        )  # fmt: skip
    stdout_console().print(table)
    return EXIT_OK


@runs.command("get")
@click.argument("run_id")
@global_options
def runs_get(run_id: str) -> int:
    """One run: status, progress, cost against budget, agents."""
    with session() as client:
        item = client.runs.get(run_id)
    if options().json:
        print_json(item.raw)
        return EXIT_OK
    table = Table(show_header=False, box=None)
    rows = [
        ("ID", item.id), ("Status", item.status), ("Task", item.task),
        ("Template", item.template), ("Swarm", item.swarm_id), ("Workspace", item.workspace_id),
        ("Progress", f"{round((item.progress or 0) * 100)}%"),
        ("Cost", spent(item.cost_usd, item.max_budget_usd)),
        ("Agents", f"{item.agents_active or 0} active / {item.agents_total or '?'}"),
        ("Error", " ".join(filter(None, (item.error_code, item.error_message)))),
        ("Created", when(item.created_at)), ("Started", when(item.started_at)),
        ("Finished", when(item.finished_at)),
    ]  # fmt: skip
    for name, value in rows:
        if value:
            table.add_row(f"[bold]{name}[/]", str(value))
    stdout_console().print(table)
    return EXIT_OK


@runs.command("result")
@click.argument("run_id")
@global_options
def runs_result(run_id: str) -> int:
    """A run's output (markdown) and its cost report."""
    with session() as client:
        result = client.runs.result(run_id)
        if options().json:
            print_json(result.raw)
            return EXIT_OK
        item = client.runs.get(run_id)
    show_result(item, result, per_agent=True)
    return EXIT_OK


@runs.command("cancel")
@click.argument("run_id")
@global_options
def runs_cancel(run_id: str) -> int:
    """Cancel a run (a running one stops within a quarter second)."""
    with session() as client:
        item = client.runs.cancel(run_id)
    if options().json:
        print_json(item.raw)
    else:
        stdout_console().print(f"{item.id} {item.status}", soft_wrap=True)
    return EXIT_OK


@runs.command("follow")
@click.argument("run_id")
@global_options
def runs_follow(run_id: str) -> int:
    """Watch a run's live progress bar, then print its result."""
    with session() as client:
        return _follow_and_show(client, run_id)


@runs.command("events")
@click.argument("run_id")
@click.option("--after", type=click.IntRange(min=0), default=0, help="Only events after seq N.")
@click.option("--follow", "-f", is_flag=True, help="Stream new events until the run ends.")
@global_options
def runs_events(run_id: str, after: int, follow: bool) -> int:
    """A run's events (stored, or streamed live with --follow). With --json they are one
    array, written once the run has ended when following."""
    with session() as client:
        if follow:
            source = client.runs.stream(run_id, after=after)
        else:
            source = client.runs.events(run_id, after=after)
        if options().json:
            # One document: with --follow it is written when the run has ended.
            print_json([event.raw for event in source])
            return EXIT_OK
        console = stdout_console()
        for event in source:
            console.print(_event_line(event), soft_wrap=True, markup=False, highlight=False)
    return EXIT_OK


def _event_line(event: Any) -> str:
    return f"{event.seq:>5}  {event.type:<18} {event.agent_id or '-':<14} {_event_summary(event)}"


def _event_summary(event: Any) -> str:
    data = event.data if isinstance(event.data, dict) else {}
    if event.type == "run.progress":
        return (
            f"{round(float(data.get('progress', 0)) * 100)}% {money(data.get('cost_usd'))} "
            f"agents {data.get('agents_active')}/{data.get('agents_total')}"
        )
    if event.type == "agent.delegated":
        return f"-> {data.get('target')}: {_short(data.get('summary'), 80)}"
    for key in ("summary", "task", "error", "output", "tool"):
        if data.get(key):
            return _short(data[key], 100)
    if "cost_usd" in data:
        return money(data["cost_usd"])
    return _short(", ".join(f"{k}={v}" for k, v in data.items()), 100)


def _short(text: Any, width: int) -> str:
    flat = " ".join(str(text or "").split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"


@runs.command("wait")
@click.argument("run_id")
@click.option("--timeout", type=click.FloatRange(min=0, min_open=True), metavar="SECONDS",
              help="Give up after this long (exit 7); default: wait for ever.")  # fmt: skip
@global_options
def runs_wait(run_id: str, timeout: float | None) -> int:
    """Block until the run has finished; the exit code says how it ended (7 also when it
    stopped to wait for an operator: an approval, or a budget to raise)."""
    with session() as client:
        item = client.runs.wait(run_id, timeout=timeout)
    if options().json:
        print_json(item.raw)
    else:
        stdout_console().print(
            f"{item.id} {item.status} {spent(item.cost_usd, item.max_budget_usd)}",
            soft_wrap=True,
        )
    if not item.finished:
        print_error(f"{item.id} is {item.status}: it waits for an operator", code=item.status)
        return EXIT_TIMEOUT
    return run_exit_code(item)


# --- usage ---------------------------------------------------------------------------------------
@app.command()
@click.option("--month", metavar="YYYY-MM", callback=check_month, help="Default: this month.")
@global_options
def usage(month: str | None) -> int:
    """Spend for a month, by swarm type."""
    with session() as client:
        report = client.usage.get(month=month)
    raw = report.raw
    if options().json:
        print_json(raw)
        return EXIT_OK
    current = raw.get("current_month") or {}
    console = stdout_console()
    console.print(
        f"[bold]{raw.get('month') or month or 'This month'}[/]: {money(current.get('total_usd'))}"
        f" over {current.get('total_swarms', 0)} runs, {current.get('total_tokens', 0)} tokens",
        soft_wrap=True,
    )
    by_type = current.get("by_swarm_type") or {}
    if by_type:
        table = Table("Swarm type", "Runs", "Cost")
        for name, row in by_type.items():
            table.add_row(name, str(row.get("count")), money(row.get("total_usd")))
        console.print(table)
    return EXIT_OK


# --- swarms --------------------------------------------------------------------------------------
@app.group()
@global_options
def swarms() -> None:
    """Saved swarms: list, create, delete (to the trash) and restore."""


@swarms.command("list")
@click.option("--deleted", is_flag=True, help="List the trash instead.")
@click.option("--limit", type=click.IntRange(1, 1000), default=50, show_default=True)
@global_options
def swarms_list(deleted: bool, limit: int) -> int:
    """The swarms you can see."""
    params = {"include_deleted": "only"} if deleted else {}
    with session() as client:
        items = list(itertools.islice(client.swarms.list(**params), limit))
    if options().json:
        print_json([item.raw for item in items])
        return EXIT_OK
    table = Table(
        id_column("ID", [i.id for i in items]), "Name", "Workspace", "Default version",
        "Created", "Deleted",
    )  # fmt: skip
    for item in items:
        table.add_row(
            item.id, item.name, item.workspace_id, item.default_version_id,
            when(item.created_at), when(item.deleted_at) if item.deleted_at else "",
        )  # fmt: skip
    stdout_console().print(table)
    return EXIT_OK


@swarms.command("create")
@click.option("--workspace", metavar="WSP", help="Default: the saved one, or your only one.")
@click.option("--name", required=True)
@click.option("--description")
@click.option("--instructions", help="Instructions every agent shares.")
@click.option("--model", "models", multiple=True, metavar="MODEL", help="Repeat for several.")
@global_options
def swarms_create(
    workspace: str | None,
    name: str,
    description: str | None,
    instructions: str | None,
    models: tuple[str, ...],
) -> int:
    """Create a swarm (its version 1 from the instructions and models)."""
    fields: dict[str, Any] = {"description": description, "instructions": instructions}
    fields = {key: value for key, value in fields.items() if value is not None}
    if models:
        fields["models"] = list(models)
    with session() as client:
        workspaces = client.workspaces.list()
        workspace_id = _workspace_id(workspaces, workspace) or _default_workspace(workspaces)
        item = client.swarms.create(workspace_id=workspace_id, name=name, **fields)
    return _show_swarm(item, "created")


def _default_workspace(workspaces: list[Any]) -> str:
    saved = auth_load()
    if saved is not None and saved.workspace and not explicit_api_key():
        return saved.workspace
    if len(workspaces) == 1:
        return workspaces[0].id
    raise click.BadParameter("you are in several workspaces: say which", param_hint="--workspace")


@swarms.command("delete")
@click.argument("swarm_id")
@global_options
def swarms_delete(swarm_id: str) -> int:
    """Move a swarm to the trash (`sverm swarms restore` undoes it)."""
    with session() as client:
        item = client.swarms.delete(swarm_id)
    return _show_swarm(item, "deleted")


@swarms.command("restore")
@click.argument("swarm_id")
@global_options
def swarms_restore(swarm_id: str) -> int:
    """Take a swarm out of the trash."""
    with session() as client:
        item = client.swarms.restore(swarm_id)
    return _show_swarm(item, "restored")


def _show_swarm(item: Any, done: str) -> int:
    if options().json:
        print_json(item.raw)
    else:
        stdout_console().print(f"{item.id} {done} ({item.name})", soft_wrap=True)
    return EXIT_OK


# --- entry point ---------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    """Run the CLI; the exit code (the `sverm` console script's, and `python -m`'s)."""
    try:
        code = app.main(args=argv, prog_name="sverm", standalone_mode=False)
    except click.UsageError as error:
        hint = f" (see '{error.ctx.command_path} --help')" if error.ctx else ""
        print_error(error.format_message() + hint)
        return EXIT_USAGE
    except click.Abort as error:
        if isinstance(error.__context__, EOFError):
            print_error("no input")
            return EXIT_USAGE
        print_error("interrupted")
        return EXIT_INTERRUPTED
    except KeyboardInterrupt:
        print_error("interrupted")
        return EXIT_INTERRUPTED
    except NotLoggedIn as error:
        print_error(str(error))
        return EXIT_AUTH
    except errors.SvermError as error:
        print_error(
            str(getattr(error, "message", None) or error),
            code=getattr(error, "code", None),
            correlation_id=getattr(error, "correlation_id", None),
        )
        return exit_code_for(error)
    except click.ClickException as error:
        print_error(error.format_message())
        return error.exit_code
    return code if isinstance(code, int) else EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
