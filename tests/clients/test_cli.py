"""The `sverm` command line, run as a real process (in a pseudo-terminal where it matters)
against a real embedded sverm server: login and its saved credentials, runs with their live
progress bar and Ctrl-C, --json output checked against the API, and the exit codes."""

import contextlib
import errno
import fcntl
import json
import os
import re
import select
import signal
import stat
import struct
import subprocess
import sys
import termios
import time
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import httpx
import pytest

from tests.processes import ROOT, embedded_server_env, manage, start_embedded_server, stop

SRC = ROOT / "clients" / "python" / "src"
EMAIL = "cli@example.com"
PASSWORD = "cli-password-1234"
API_KEY = re.compile(r"API key: (sk-sverm-\S+)")
# Seconds per simulated LLM call: a research run takes about a second, and the 30-step
# definition below about nine, so Ctrl-C always lands while it runs.
LATENCY = "0.3"
ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b[()][0-9A-Za-z]|\x1b[=>]")
ERROR_LINE = re.compile(r"^error: .+ \(code (\w+), correlation id (req_\w+)\)$")
EXIT_USAGE, EXIT_BUDGET, EXIT_CANCELLED, EXIT_AUTH, EXIT_NOT_FOUND, EXIT_TIMEOUT = 2, 3, 4, 5, 6, 7
EXIT_INTERRUPTED = 130


@dataclass(frozen=True)
class Server:
    base: str
    key: str

    def api(self, method: str, path: str, **kwargs) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.key}"}
        return httpx.request(method, self.base + path, headers=headers, timeout=30, **kwargs)

    def json(self, path: str, **kwargs):
        response = self.api("GET", path, **kwargs)
        assert response.status_code == 200, response.text
        return json.loads(response.text, parse_float=Decimal)

    def start_run(self, template: str = "research-swarm-v1", budget: str = "2.50") -> str:
        response = self.api(
            "POST", "/v1/swarms",
            json={"template": template, "task": "Heat pumps in Bergen", "max_budget_usd": budget},
        )  # fmt: skip
        assert response.status_code == 201, response.text
        return response.json()["swarm_id"]

    def wait_finished(self, run_id: str, timeout: float = 30) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            run = self.json(f"/api/runs/{run_id}")
            if run["status"] in ("completed", "failed", "cancelled"):
                return run
            assert time.monotonic() < deadline, f"{run_id} still {run['status']}"
            time.sleep(0.2)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("cli-server")
    env = embedded_server_env(
        tmp, SVERM_SIMULATED_LATENCY=LATENCY, SVERM_RATE_LIMITS="0", SVERM_AUTH_RATE="1000/min"
    )
    manage(env, "migrate", "--noinput")
    out = manage(env, "bootstrap", "--email", EMAIL, "--plan", "team", "--password", PASSWORD)
    process, base, _ = start_embedded_server(env, tmp)
    try:
        yield Server(base, API_KEY.search(out).group(1))
    finally:
        stop(process)


@pytest.fixture(scope="module")
def slow_definition(tmp_path_factory) -> Path:
    """A YAML definition of 30 agents one after the other: about nine seconds of run."""
    path = tmp_path_factory.mktemp("definitions") / "slow.yaml"
    agents = "".join(
        f"  - {{id: step-{n}, role: worker, model: gpt-4o-mini}}\n" for n in range(1, 31)
    )
    path.write_text(f"topology: sequential\nlimits: {{max_steps: 30}}\nagents:\n{agents}")
    return path


class Cli:
    """`python -m sverm_client.cli` with a home of its own (its config lands there)."""

    def __init__(self, home: Path, server: Server) -> None:
        self.home = home
        self.server = server
        self.env = {k: v for k, v in os.environ.items() if not k.startswith(("SVERM_", "PYTEST_"))}
        self.env.update(
            HOME=str(home),
            XDG_CONFIG_HOME=str(home / "xdg"),
            SVERM_URL=server.base,
            PYTHONPATH=os.pathsep.join(filter(None, [str(SRC), os.environ.get("PYTHONPATH")])),
            NO_COLOR="1",
            COLUMNS="200",
        )

    @property
    def auth_file(self) -> Path:
        return self.home / "xdg" / "sverm" / "auth.json"

    def __call__(self, *args: str, key: bool = True, input: str | None = None, **env: str):
        """Run `sverm <args>` (with the server's API key in SVERM_API_KEY unless key=False)."""
        environ = {**self.env, **env}
        if key:
            environ.setdefault("SVERM_API_KEY", self.server.key)
        return subprocess.run(
            [sys.executable, "-m", "sverm_client.cli", *args],
            env=environ, input=input, capture_output=True, text=True, timeout=60,
        )  # fmt: skip

    def json(self, *args: str, **kwargs):
        result = self(*args, "--json", **kwargs)
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout, parse_float=Decimal)

    def terminal(self, *args: str, key: bool = True) -> "Terminal":
        """Run `sverm <args>` on a pseudo-terminal of its own."""
        environ = {**self.env, "TERM": "xterm-256color"}
        if key:
            environ["SVERM_API_KEY"] = self.server.key
        return Terminal([sys.executable, "-m", "sverm_client.cli", *args], environ)


@pytest.fixture
def cli(tmp_path, server) -> Cli:
    return Cli(tmp_path / "home", server)


def error_of(result) -> tuple[str, str]:
    """The (code, correlation id) of a failed command's one stderr line."""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    match = ERROR_LINE.match(lines[0])
    assert match, lines[0]
    return match.group(1), match.group(2)


class Terminal:
    """A child process on a pseudo-terminal it has as controlling terminal (so ^C is SIGINT)."""

    def __init__(self, args: list[str], env: dict[str, str]) -> None:
        master, slave = os.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 200, 0, 0))

        def controlling_terminal() -> None:
            os.setsid()
            fcntl.ioctl(0, termios.TIOCSCTTY, 0)

        self.process = subprocess.Popen(
            args, stdin=slave, stdout=slave, stderr=slave, env=env,
            preexec_fn=controlling_terminal, close_fds=True,
        )  # fmt: skip
        os.close(slave)
        self.master = master
        self.raw = b""

    @property
    def text(self) -> str:
        return ANSI.sub("", self.raw.decode("utf-8", "replace"))

    def _read(self, timeout: float) -> bool:
        """Read what is there within `timeout`; False at end of output."""
        ready, _, _ = select.select([self.master], [], [], timeout)
        if not ready:
            return True
        try:
            chunk = os.read(self.master, 65536)
        except OSError as error:
            if error.errno == errno.EIO:  # the child closed the terminal
                return False
            raise
        self.raw += chunk
        return bool(chunk)

    def expect(self, pattern: str, timeout: float = 30) -> re.Match:
        """The first match of `pattern` in the output, waiting for it up to `timeout`."""
        deadline = time.monotonic() + timeout
        while True:
            if match := re.search(pattern, self.text):
                return match
            left = deadline - time.monotonic()
            if left <= 0 or not self._read(min(left, 0.2)):
                if match := re.search(pattern, self.text):
                    return match
                pytest.fail(f"no {pattern!r} in:\n{self.text[-3000:]}")

    def send(self, data: bytes) -> None:
        os.write(self.master, data)

    def wait(self, timeout: float = 60) -> int:
        deadline = time.monotonic() + timeout
        while self.process.poll() is None:
            assert time.monotonic() < deadline, f"still running:\n{self.text[-3000:]}"
            self._read(0.1)
        while self._read(0.05):
            pass
        return self.process.returncode

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()
        with contextlib.suppress(OSError):
            os.close(self.master)


@pytest.fixture
def terminals():
    opened: list[Terminal] = []
    yield opened
    for terminal in opened:
        terminal.close()


# --- login ---------------------------------------------------------------------------------------
def test_login_with_password_saves_a_private_auth_file_that_later_commands_use(cli, server):
    result = cli("login", "--email", EMAIL, "--password", PASSWORD, key=False)
    assert result.returncode == 0, result.stderr
    assert stat.S_IMODE(cli.auth_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(cli.auth_file.parent.stat().st_mode) == 0o700
    saved = json.loads(cli.auth_file.read_text())
    assert saved["base_url"] == server.base
    assert saved["access"] and saved["refresh"] and saved["api_key"] is None
    assert PASSWORD not in cli.auth_file.read_text()

    # No key and no URL given: the saved login (and its URL) serve the next command.
    listed = cli.json("templates", key=False, SVERM_URL="")
    assert [t["id"] for t in listed] == [t["id"] for t in server.json("/v1/templates")["templates"]]

    assert cli("logout", key=False).returncode == 0
    assert not cli.auth_file.exists()
    logged_out = cli("templates", key=False)
    assert logged_out.returncode == EXIT_AUTH
    assert logged_out.stderr.startswith("error: not logged in")


def test_login_honours_sverm_config_dir_and_a_wrong_password_saves_nothing(cli, tmp_path):
    config = tmp_path / "elsewhere" / "sverm-config"
    wrong = cli("login", "--email", EMAIL, "--password", "nope", key=False,
                SVERM_CONFIG_DIR=str(config))  # fmt: skip
    assert wrong.returncode == EXIT_AUTH
    assert error_of(wrong)[0] in ("unauthorized", "invalid_credentials", "authentication_failed")
    assert not config.exists()

    right = cli("login", "--email", EMAIL, "--password", PASSWORD, key=False,
                SVERM_CONFIG_DIR=str(config))  # fmt: skip
    assert right.returncode == 0, right.stderr
    assert stat.S_IMODE((config / "auth.json").stat().st_mode) == 0o600
    assert not cli.auth_file.exists()


def test_login_prompts_for_what_is_missing_without_echoing_the_password(cli, terminals):
    terminal = cli.terminal("login", key=False)
    terminals.append(terminal)
    terminal.expect("Email: ")
    terminal.send(EMAIL.encode() + b"\r")
    terminal.expect("Password: ")
    terminal.send(PASSWORD.encode() + b"\r")
    assert terminal.wait() == 0, terminal.text
    assert PASSWORD not in terminal.text
    assert json.loads(cli.auth_file.read_text())["refresh"]


def test_a_refreshed_access_token_is_saved_and_a_login_stays_with_its_server(cli, server):
    assert cli("login", "--email", EMAIL, "--password", PASSWORD, key=False).returncode == 0
    saved = json.loads(cli.auth_file.read_text())
    cli.auth_file.write_text(json.dumps({**saved, "access": "not-a-jwt"}))
    result = cli("runs", "list", key=False)
    assert result.returncode == 0, result.stderr
    renewed = json.loads(cli.auth_file.read_text())
    assert renewed["access"] not in ("not-a-jwt", None) and renewed["refresh"]
    assert stat.S_IMODE(cli.auth_file.stat().st_mode) == 0o600

    # The saved tokens are for that server only: another URL is not logged in.
    elsewhere = cli("templates", key=False, SVERM_URL="http://127.0.0.1:9")
    assert elsewhere.returncode == EXIT_AUTH
    assert elsewhere.stderr.startswith("error: not logged in to http://127.0.0.1:9")


def test_login_with_an_api_key(cli, server):
    result = cli("login", "--api-key", server.key, key=False)
    assert result.returncode == 0, result.stderr
    saved = json.loads(cli.auth_file.read_text())
    assert saved["api_key"] == server.key and saved["access"] is None
    assert stat.S_IMODE(cli.auth_file.stat().st_mode) == 0o600
    assert cli("runs", "list", key=False).returncode == 0


def test_a_bad_api_key_exits_5_with_the_correlation_id(cli, server):
    for args in (("templates",), ("login", "--api-key", "sk-sverm-wrong")):
        result = cli(*args, key=False, SVERM_API_KEY="sk-sverm-wrong")
        assert result.returncode == EXIT_AUTH, result.stderr
        assert result.stdout == ""
        code, correlation_id = error_of(result)
        assert code == "unauthorized" and correlation_id.startswith("req_")
    assert not cli.auth_file.exists()


# --- templates, run ------------------------------------------------------------------------------
def test_templates_as_a_table_and_as_json(cli, server):
    expected = server.json("/v1/templates")["templates"]
    assert cli.json("templates") == expected
    before = cli("--json", "templates")  # global options go before the command too
    assert json.loads(before.stdout, parse_float=Decimal) == expected
    table = cli("templates")
    assert table.returncode == 0
    for template in expected:
        assert template["id"] in table.stdout
    yaml = cli("templates", "pipeline-swarm-v1")
    assert yaml.returncode == 0 and "topology: sequential" in yaml.stdout


def test_run_without_follow_prints_the_id_and_json_is_the_created_body(cli, server):
    result = cli("run", "pipeline-swarm-v1", "Summarise the memo", "--budget", "2.50")
    assert result.returncode == 0, result.stderr
    run_id = result.stdout.strip()
    assert re.fullmatch(r"run_\w+", run_id)
    run = server.json(f"/api/runs/{run_id}")
    assert run["task"] == "Summarise the memo" and run["maxBudgetUsd"] == Decimal("2.50")

    created = cli.json("run", "pipeline-swarm-v1", "Again", "--idempotency-key", "cli-test-1")
    again = cli.json("run", "pipeline-swarm-v1", "Again", "--idempotency-key", "cli-test-1")
    assert created["swarm_id"].startswith("run_") and again["swarm_id"] == created["swarm_id"]
    assert created["estimated_cost_usd"] > 0


def test_a_budget_the_server_refuses_exits_3(cli):
    result = cli("run", "research-swarm-v1", "Too cheap", "--budget", "0.000001")
    assert result.returncode == EXIT_BUDGET
    assert result.stdout == ""
    assert error_of(result)[0] == "budget_exceeded"


@pytest.mark.parametrize("budget", ["abc", "-1", "0", "nan", "1,50"])
def test_a_bad_budget_is_a_usage_error(cli, budget):
    result = cli("run", "research-swarm-v1", "Task", "--budget", budget)
    assert result.returncode == EXIT_USAGE
    assert result.stdout == ""
    assert result.stderr.startswith("error: ") and "--budget" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_a_missing_definition_file_is_a_usage_error(cli, tmp_path):
    result = cli("run", str(tmp_path / "nowhere.yaml"), "Task")
    assert result.returncode == EXIT_USAGE and "no such file" in result.stderr


# --- follow --------------------------------------------------------------------------------------
def test_follow_shows_a_live_progress_bar_then_the_result(cli, server, terminals):
    terminal = cli.terminal(
        "run", "research-swarm-v1", "Hydrogen in Norway", "--budget", "2.50", "--follow"
    )
    terminals.append(terminal)
    run_id = terminal.expect(r"Following (run_\w+)").group(1)
    # A frame of the bar: status, percentage, cost against budget, agents.
    terminal.expect(r"(running|completed) .*? \d+% \$[\d.]+ / \$2\.50 agents \d+/5")
    assert terminal.wait() == 0, terminal.text
    run = server.json(f"/api/runs/{run_id}")
    assert run["status"] == "completed"
    text = terminal.text
    assert "100%" in text
    assert "Key points" in text  # the result's markdown, rendered
    assert "## Hydrogen in Norway" not in text  # (rendered: no markdown syntax left)
    cost = Decimal(str(run["currentCostUsd"]))
    assert f"Run {run_id} completed · cost ${cost} / $2.50" in text


def test_follow_without_a_terminal_prints_progress_lines_and_the_plain_result(cli, server):
    result = cli("run", "pipeline-swarm-v1", "Summarise the memo", "--budget", "1", "--follow")
    assert result.returncode == 0, result.stderr
    progress = result.stderr.splitlines()
    assert re.match(r"run_\w+ completed 100% ", progress[-1])
    assert all(re.match(r"run_\w+ \w+ +\d+% \$[\d.]+ / \$1\.00 agents", line) for line in progress)
    run_id = progress[-1].split()[0]
    output = server.json(f"/v1/swarms/{run_id}/result")["output"]
    assert result.stdout.startswith(output)  # as is: no terminal, no rendering
    assert result.stdout.splitlines()[-1].startswith(f"Run {run_id} completed · cost $")


def test_ctrl_c_while_following_then_yes_cancels_the_run(cli, server, slow_definition, terminals):
    terminal = cli.terminal("run", str(slow_definition), "Slow", "--budget", "1", "--follow")
    terminals.append(terminal)
    terminal.expect(r"running .* \d+% \$[\d.]+ / \$1\.00 agents \d+/30")
    terminal.send(b"\x03")
    run_id = terminal.expect(r"Cancel run (run_\w+)\? \[y/N\]").group(1)
    terminal.send(b"y\r")
    assert terminal.wait() == EXIT_INTERRUPTED, terminal.text
    assert f"Run {run_id} cancelled" in terminal.text
    assert server.json(f"/api/runs/{run_id}")["status"] == "cancelled"


def test_ctrl_c_while_following_then_no_detaches(cli, server, slow_definition, terminals):
    terminal = cli.terminal("run", str(slow_definition), "Slow", "--budget", "1", "--follow")
    terminals.append(terminal)
    terminal.expect(r"running .* \d+% \$[\d.]+ / \$1\.00 agents \d+/30")
    terminal.send(b"\x03")
    run_id = terminal.expect(r"Cancel run (run_\w+)\? \[y/N\]").group(1)
    terminal.send(b"n\r")
    assert terminal.wait() == EXIT_INTERRUPTED, terminal.text
    assert f"sverm runs follow {run_id}" in terminal.text
    assert server.json(f"/api/runs/{run_id}")["status"] == "running"
    # Following again ends with the run's outcome: cancelled, exit 4.
    assert server.api("POST", f"/api/runs/{run_id}/cancel").status_code in (200, 202)
    assert server.wait_finished(run_id)["status"] == "cancelled"
    again = cli("runs", "follow", run_id)
    assert again.returncode == EXIT_CANCELLED, again.stderr
    assert f"Run {run_id} cancelled" in again.stdout


# --- runs ----------------------------------------------------------------------------------------
def test_runs_wait_get_result_events_and_list(cli, server):
    run_id = server.start_run()
    waited = cli("runs", "wait", run_id, "--timeout", "60")
    assert waited.returncode == 0, waited.stderr
    assert waited.stdout.startswith(f"{run_id} completed $")

    run = server.json(f"/api/runs/{run_id}")
    assert cli.json("runs", "get", run_id) == run
    assert cli.json("runs", "result", run_id) == server.json(f"/v1/swarms/{run_id}/result")
    result = cli("runs", "result", run_id)
    assert result.returncode == 0 and "Key points" in result.stdout
    assert f"${Decimal(str(run['currentCostUsd']))} / $2.50" in result.stdout

    stored = server.json(f"/api/runs/{run_id}/events", params={"limit": 100})["data"]
    assert cli.json("runs", "events", run_id) == stored
    later = cli.json("runs", "events", run_id, "--after", "20")
    assert [e["seq"] for e in later] == [e["seq"] for e in stored if e["seq"] > 20]
    streamed = cli.json("runs", "events", run_id, "--follow", "--after", "3")
    assert [e["seq"] for e in streamed] == [e["seq"] for e in stored if e["seq"] > 3]
    assert streamed[-1]["type"] == "run.completed"
    lines = cli("runs", "events", run_id).stdout.splitlines()
    assert len(lines) == len(stored) and "run.completed" in lines[-1]

    listed = cli.json("runs", "list", "--status", "completed", "--limit", "100")
    assert run_id in [r["id"] for r in listed]
    assert {r["status"] for r in listed} == {"completed"}
    assert len(cli.json("runs", "list", "--limit", "2")) == 2
    assert run_id in cli("runs", "list", "--limit", "100").stdout


def test_runs_cancel_and_a_wait_that_times_out(cli, server, slow_definition):
    run_id = server.start_run(template=slow_definition.read_text(), budget="1")
    timed_out = cli("runs", "wait", run_id, "--timeout", "1")
    assert timed_out.returncode == EXIT_TIMEOUT, timed_out.stderr
    cancelled = cli.json("runs", "cancel", run_id)
    assert cancelled["id"] == run_id and cancelled["status"] in ("running", "cancelled")
    waited = cli("runs", "wait", run_id, "--timeout", "30")
    assert waited.returncode == EXIT_CANCELLED
    assert server.json(f"/api/runs/{run_id}")["status"] == "cancelled"


def test_an_unknown_run_exits_6(cli):
    for command in ("get", "result", "cancel", "events", "wait"):
        result = cli("runs", command, "run_01aaaaaaaaaaaaaaaaaaaaaaaa")
        assert result.returncode == EXIT_NOT_FOUND, (command, result.stderr)
        assert error_of(result)[0] == "not_found"


# --- usage, swarms -------------------------------------------------------------------------------
def test_usage(cli, server):
    assert cli.json("usage") == server.json("/v1/usage")
    old = cli.json("usage", "--month", "2020-01")
    assert old["month"] == "2020-01" and old["current_month"]["total_swarms"] == 0
    shown = cli("usage")
    assert shown.returncode == 0 and server.json("/v1/usage")["month"] in shown.stdout
    assert cli("usage", "--month", "2020-13").returncode == EXIT_USAGE


def test_swarms_create_list_delete_restore(cli, server):
    created = cli.json(
        "swarms", "create", "--name", "CLI scan", "--instructions", "Cite sources.",
        "--model", "gpt-4o-mini",
    )  # fmt: skip
    swarm_id = created["id"]
    assert swarm_id.startswith("swm_") and created["name"] == "CLI scan"
    assert created == server.json(f"/api/swarms/{swarm_id}")
    assert swarm_id in [s["id"] for s in cli.json("swarms", "list")]
    assert "CLI scan" in cli("swarms", "list").stdout

    deleted = cli.json("swarms", "delete", swarm_id)
    assert deleted["deletedAt"] is not None
    assert swarm_id not in [s["id"] for s in cli.json("swarms", "list")]
    assert swarm_id in [s["id"] for s in cli.json("swarms", "list", "--deleted")]

    restored = cli("swarms", "restore", swarm_id)
    assert restored.returncode == 0 and f"{swarm_id} restored" in restored.stdout
    assert server.json(f"/api/swarms/{swarm_id}")["deletedAt"] is None
    assert cli("swarms", "delete", "swm_01aaaaaaaaaaaaaaaaaaaaaaaa").returncode == EXIT_NOT_FOUND


# --- the progress bar's view of a run ------------------------------------------------------------
def test_the_bar_follows_pauses_raised_budgets_and_the_ending():
    from sverm_client import Event, Run
    from sverm_client.cli_follow import RunView

    run = Run.from_wire({"id": "run_x", "status": "queued", "maxBudgetUsd": Decimal("0.50")})
    steps = [
        ("run.started", None, {"agents_total": 3}),
        ("agent.started", "a", {}),
        ("run.progress", None, {"progress": 0.5, "cost_usd": Decimal("0.000123"),
                                "agents_active": 1, "agents_total": 3}),
        ("approval.requested", "a", {"tool": "http_fetch"}),
        ("agent.started", "b", {}),
        ("run.paused", None, {"reason": "budget", "needed_usd": Decimal("0.25")}),
        ("run.budget_raised", None, {"from_usd": "0.50", "to_usd": "1.00"}),
        ("run.completed", None, {"cost_usd": Decimal("0.6")}),
    ]  # fmt: skip
    views = [RunView.start(run)]
    for seq, (type_, agent, data) in enumerate(steps, 1):
        event = Event(seq=seq, type=type_, agent_id=agent, data=data)
        views.append(views[-1].apply(event))
    assert [v.status for v in views] == [
        "queued", "running", "running", "running", "awaiting_approval", "running",
        "awaiting_budget", "awaiting_budget", "completed",
    ]  # fmt: skip
    assert views[3].fields()["cost"] == "$0.000123 / $0.50"
    assert views[3].agents == "agents 1/3" and views[5].agents == "agents 2/3"
    assert views[6].step == "needs $0.25 more budget"
    assert views[7].budget == Decimal("1.00")
    assert views[8].fields()["cost"] == "$0.60 / $1.00" and views[8].progress == 1.0
    assert views[8].agents == "agents 0/3"
