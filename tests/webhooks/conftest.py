"""A real HTTP receiver on 127.0.0.1 (scripted answers, every request recorded), an independent
Standard Webhooks verifier, and settings that keep retry delays tiny."""

import base64
import hashlib
import hmac
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from swarms import executor, jobs
from swarms.models import Run, WebhookDelivery
from tests.runs.conftest import executing  # noqa: F401  (re-exported fixture)
from tests.waiting import wait_for

DEADLINE = 20.0


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float


@dataclass
class Receiver:
    """Answers requests with `script` in order (status, headers), then 200; `while_answering`,
    when set, is called (on the receiver's thread) after a request is recorded and before it is
    answered: a slow receiver, or a look at the sender while it waits."""

    server: ThreadingHTTPServer
    script: list[tuple[int, dict[str, str]]] = field(default_factory=list)
    requests: list[Received] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    while_answering: Callable[[], None] | None = None

    @property
    def port(self) -> int:
        return self.server.server_address[1]

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def wait_for(self, count: int, timeout: float = DEADLINE) -> list[Received]:
        deadline = time.monotonic() + timeout
        while len(self.requests) < count:
            if time.monotonic() > deadline:
                pytest.fail(f"receiver got {len(self.requests)} of {count} requests")
            time.sleep(0.01)
        return self.requests


def _handler(receiver_ref: list[Receiver]):
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            receiver = receiver_ref[0]
            body = self.rfile.read(int(self.headers.get("content-length") or 0))
            with receiver.lock:
                receiver.requests.append(
                    Received(
                        self.path, {k.lower(): v for k, v in self.headers.items()}, body,
                        time.monotonic(),
                    )
                )  # fmt: skip
                status, headers = receiver.script.pop(0) if receiver.script else (200, {})
            if receiver.while_answering is not None:
                receiver.while_answering()
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("content-length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args):
            pass

    return Handler


@pytest.fixture
def receiver():
    ref: list[Receiver] = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(ref))
    ref.append(Receiver(server=server))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield ref[0]
    server.shutdown()
    server.server_close()


@pytest.fixture
def hooks(executing, settings):  # noqa: F811
    """Runs execute for real; webhooks may go to 127.0.0.1 and retry after ~50 ms. Teardown
    waits for every delivery thread so the table flush never races one."""
    settings.SVERM_WEBHOOK_ALLOWED_HOSTS = ["127.0.0.1"]
    settings.SVERM_WEBHOOK_RETRY_SCHEDULE = [0, 0.05, 0.05, 0.05, 0.05]
    settings.SVERM_WEBHOOK_TIMEOUT = 5
    yield settings
    deadline = time.monotonic() + DEADLINE
    while jobs.pending_threads() and time.monotonic() < deadline:
        time.sleep(0.01)
    jobs.cancel_pending()
    while jobs.pending_threads() and time.monotonic() < deadline + 5:
        time.sleep(0.01)


def verify(secret: str, headers: dict[str, str], body: bytes) -> bool:
    """Standard Webhooks verification, written from the spec (not the code under test)."""
    key = base64.b64decode(secret.split("_", 1)[1])
    content = f"{headers['webhook-id']}.{headers['webhook-timestamp']}.".encode() + body
    expected = base64.b64encode(hmac.new(key, content, hashlib.sha256).digest()).decode()
    given = [
        part.split(",", 1)[1]
        for part in headers["webhook-signature"].split(" ")
        if part.startswith("v1,")
    ]
    return any(hmac.compare_digest(expected, candidate) for candidate in given)


def attempts_settled() -> None:
    """Wait until no delivery attempt is waiting or running in this process (an attempt that
    retries schedules the next before it ends): what a test waits for before it says that no
    more requests came."""
    wait_for(lambda: jobs.pending_threads() == 0, "the last webhook attempt's end")


def run_ended(run: Run) -> None:
    """Wait until the run is terminal and its attempt has returned (it drops its cancel token
    after the terminal write and what that commit scheduled, a webhook among them)."""
    wait_for(
        lambda: Run.objects.get(pk=run.pk).is_terminal and run.pk not in executor._local_tokens,
        f"run {run.pk}'s end",
    )


def wait_deliveries(run: Run, count: int, timeout: float = DEADLINE) -> list[WebhookDelivery]:
    deadline = time.monotonic() + timeout
    while True:
        rows = list(WebhookDelivery.objects.filter(run=run).order_by("created_at", "id"))
        if len(rows) >= count:
            return rows
        if time.monotonic() > deadline:
            pytest.fail(f"run {run.pk} has {len(rows)} of {count} deliveries: {rows}")
        time.sleep(0.01)
