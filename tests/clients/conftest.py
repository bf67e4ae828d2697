"""Fixtures for the Python SDK and CLI tests: one real embedded sverm server for the session, and
small real network helpers of our own to misbehave in front of it (a scripted HTTP server, a TCP
proxy that drops a response, a WebSocket proxy that cuts a stream)."""

import contextlib
import json
import re
import socket
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.processes import embedded_server_env, manage, start_embedded_server, stop

API_KEY = re.compile(r"API key: (sk-sverm-\S+)")
EMAIL = "sdk@example.com"
PASSWORD = "sdk-correct-horse-battery"


# --- the real server -----------------------------------------------------------------------------
@dataclass(frozen=True)
class SvermServer:
    """A running embedded sverm: its URL, the bootstrap admin (email, password) and API key."""

    base_url: str
    api_key: str
    email: str
    password: str
    data_dir: Path


@pytest.fixture(scope="session")
def sverm_server(tmp_path_factory) -> Iterator[SvermServer]:
    """`python -m sverm.server` on a free port with a migrated SQLite database, an admin on the
    team plan and an API key. Simulated calls take 0.05 s, so a research run lasts about 0.3 s;
    plan rate limits are off (the tests make many calls a minute)."""
    tmp_path = tmp_path_factory.mktemp("sverm-server")
    env = embedded_server_env(
        tmp_path,
        SVERM_SIMULATED_LATENCY="0.05",
        SVERM_RATE_LIMITS="0",
        SVERM_AUTH_RATE="1000/min",
    )
    manage(env, "migrate", "--noinput")
    out = manage(env, "bootstrap", "--email", EMAIL, "--password", PASSWORD, "--plan", "team")
    api_key = API_KEY.search(out).group(1)
    process, base_url, _ = start_embedded_server(env, tmp_path)
    try:
        yield SvermServer(base_url, api_key, EMAIL, PASSWORD, tmp_path / "data")
    finally:
        stop(process)


# --- a scripted HTTP server ----------------------------------------------------------------------
@dataclass
class Scripted:
    """One answer of a ScriptedServer."""

    status: int
    body: object = None
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str = "application/json"


@dataclass
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


class ScriptedServer:
    """A real HTTP/1.1 server on loopback that answers each request with the next scripted answer
    (the last one again once they are used up) and records what it received."""

    def __init__(self, *answers: Scripted) -> None:
        self.answers = list(answers)
        self.received: list[Received] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                owner.received.append(
                    Received(self.command, self.path, dict(self.headers.items()), body)
                )
                index = min(len(owner.received), len(owner.answers)) - 1
                scripted = owner.answers[index]
                if isinstance(scripted.body, bytes | str):
                    payload = (
                        scripted.body.encode() if isinstance(scripted.body, str) else scripted.body
                    )
                else:
                    payload = json.dumps(scripted.body).encode()
                self.send_response(scripted.status)
                self.send_header("Content-Type", scripted.content_type)
                self.send_header("Content-Length", str(len(payload)))
                self.send_header("X-Request-ID", f"req_scripted{len(owner.received)}")
                for name, value in scripted.headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = do_DELETE = do_PATCH = answer

            def log_message(self, *args) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def scripted_server() -> Iterator[Callable[..., ScriptedServer]]:
    """Start a ScriptedServer answering with the given Scripted answers, in order."""
    servers: list[ScriptedServer] = []

    def start(*answers: Scripted) -> ScriptedServer:
        server = ScriptedServer(*answers)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.close()


# --- a TCP proxy that misbehaves once ------------------------------------------------------------
class FaultyProxy:
    """A TCP proxy on loopback in front of `upstream` (host, port). Its first connection
    misbehaves as `fault` says (once); the others pass everything through.

    - "drop_response": the request reaches the server, but the first bytes of the answer make
      the proxy close both sides instead: the client never hears the response.
    - "cut_stream": a WebSocket's handshake and its first `frames` messages pass, then half of
      the next one, then the connection is cut (no close frame: an abnormal drop).

    - "none": every connection passes (to count them).

    `requests` holds the first bytes each client sent (its request line and headers)."""

    def __init__(self, upstream: tuple[str, int], fault: str, *, frames: int = 5) -> None:
        assert fault in ("drop_response", "cut_stream", "none")
        self.upstream = upstream
        self.fault = fault
        self.frames = frames
        self.requests: list[bytes] = []
        self.faults = 0
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.sockets: list[socket.socket] = []
        self.closed = False
        threading.Thread(target=self.accept_loop, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def accept_loop(self) -> None:
        while not self.closed:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self.serve, args=(client,), daemon=True).start()

    def serve(self, client: socket.socket) -> None:
        """Read the client's first bytes, decide whether this connection is the faulty one (the
        first, or for "cut_stream" the first WebSocket handshake), then pump both ways."""
        server = socket.create_connection(self.upstream)
        self.sockets += [client, server]
        with contextlib.suppress(OSError):
            first = client.recv(65536)
            server.sendall(first)
        index = len(self.requests)
        self.requests.append(first)
        handshake = b"upgrade: websocket" in first.lower()
        target = self.pump_down
        if self.faults == 0 and self.fault == "drop_response" and index == 0:
            target = self.drop_down
        elif self.faults == 0 and self.fault == "cut_stream" and handshake:
            target = self.cut_down
        threading.Thread(target=self.pump_up, args=(client, server, index), daemon=True).start()
        target(server, client)

    def pump_up(self, client: socket.socket, server: socket.socket, index: int) -> None:
        with contextlib.suppress(OSError):
            while data := client.recv(65536):
                if len(self.requests[index]) < 16384:
                    self.requests[index] += data
                server.sendall(data)
        self.shut(server)

    def pump_down(self, server: socket.socket, client: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := server.recv(65536):
                client.sendall(data)
        self.shut(client)

    def drop_down(self, server: socket.socket, client: socket.socket) -> None:
        with contextlib.suppress(OSError):
            server.recv(65536)  # the server answered: it has done the work
        self.faults += 1
        self.kill(client)
        self.kill(server)

    def cut_down(self, server: socket.socket, client: socket.socket) -> None:
        buffer = b""
        handshake_done = False
        sent_frames = 0
        with contextlib.suppress(OSError):
            while data := server.recv(65536):
                buffer += data
                if not handshake_done:
                    end = buffer.find(b"\r\n\r\n")
                    if end < 0:
                        continue
                    client.sendall(buffer[: end + 4])
                    buffer = buffer[end + 4 :]
                    handshake_done = True
                while True:
                    size = frame_size(buffer)
                    if size is None:
                        break
                    if sent_frames == self.frames:
                        client.sendall(buffer[: max(size // 2, 1)])  # half a message
                        self.faults += 1
                        self.kill(client)
                        self.kill(server)
                        return
                    client.sendall(buffer[:size])
                    buffer = buffer[size:]
                    sent_frames += 1
        self.shut(client)

    @staticmethod
    def shut(sock: socket.socket) -> None:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_WR)

    @staticmethod
    def kill(sock: socket.socket) -> None:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
        with contextlib.suppress(OSError):
            sock.close()

    def close(self) -> None:
        self.closed = True
        self.kill(self.listener)
        for sock in self.sockets:
            self.kill(sock)


def frame_size(buffer: bytes) -> int | None:
    """The size in bytes of the complete WebSocket frame (server to client: unmasked) at the start
    of `buffer`, or None until all of it is there."""
    if len(buffer) < 2:
        return None
    length, offset = buffer[1] & 0x7F, 2
    if length == 126:
        if len(buffer) < 4:
            return None
        length, offset = int.from_bytes(buffer[2:4], "big"), 4
    elif length == 127:
        if len(buffer) < 10:
            return None
        length, offset = int.from_bytes(buffer[2:10], "big"), 10
    if buffer[1] & 0x80:
        offset += 4
    size = offset + length
    return size if len(buffer) >= size else None


@pytest.fixture
def faulty_proxy(sverm_server) -> Iterator[Callable[..., FaultyProxy]]:
    """Start a FaultyProxy in front of the session's sverm server."""
    proxies: list[FaultyProxy] = []
    host, port = sverm_server.base_url.removeprefix("http://").split(":")

    def start(fault: str, **options) -> FaultyProxy:
        proxy = FaultyProxy((host, int(port)), fault, **options)
        proxies.append(proxy)
        return proxy

    yield start
    for proxy in proxies:
        proxy.close()
