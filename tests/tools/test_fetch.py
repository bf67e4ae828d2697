"""The `http_fetch` tool against a real HTTP server on 127.0.0.1: readable text, charsets, the
byte and character caps, redirects re-checked by the SSRF guard at every hop, and the errors
the model reads."""

import asyncio
import gzip
import json
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import jsonschema
import pytest

from swarms.engine.tools import Toolbox, ToolCall, ToolError
from tests.processes import ROOT, free_port
from tools.fetch import HttpFetch

PAGE = b"""<!doctype html>
<html><head><title>  The  Test
 Page </title><style>body { color: red }</style>
<script>var secret = "script text";</script></head>
<body>
<header>Site banner</header>
<nav><a href="/">Home</a> | <a href="/about">About</a></nav>
<main>
<h1>Main heading</h1>
<p>First   paragraph with a <a href="/more">useful link</a> inside.</p>
<p>Second<br>line</p>
<ul><li>one</li><li>two</li></ul>
<!-- a comment nobody should read -->
<noscript>Enable JavaScript</noscript>
<template><p>template text</p></template>
<svg><text>svg text</text></svg>
<form><label>Search</label><input name="q"></form>
</main>
<aside>Sidebar ad</aside>
<footer>Copyright footer</footer>
<script>console.log("late script");</script>
</body></html>"""
HUGE_BYTES = 5_000_000
CHUNK = b"x" * 65_536


class Handler(BaseHTTPRequestHandler):
    """Routes by path; every request's path is recorded on the server."""

    def do_GET(self):
        self.server.paths.append(self.path)
        parts = urlsplit(self.path)
        query = {key: values[0] for key, values in parse_qs(parts.query).items()}
        route = parts.path
        if route == "/page":
            self._send(200, "text/html; charset=utf-8", PAGE)
        elif route == "/plain":
            self._send(200, "text/plain", b"Just some plain text.\nSecond line.")
        elif route == "/json":
            self._send(200, "application/problem+json", json.dumps({"answer": 42}).encode())
        elif route == "/latin1":
            self._send(
                200, "text/plain; charset=iso-8859-1", "Caf\u00e9 cr\u00e8me".encode("latin-1")
            )
        elif route == "/latin1-meta":
            body = '<html><head><meta charset="iso-8859-1"><title>Caf\u00e9</title></head>'
            body += "<body><p>Cr\u00e8me br\u00fbl\u00e9e</p></body></html>"
            self._send(200, "text/html", body.encode("latin-1"))
        elif route == "/long":
            self._send(200, "text/plain", b"0123456789" * 5_000)
        elif route == "/huge":
            self._stream_huge()
        elif route == "/gzip-bomb":
            self._send(200, "text/plain", gzip.compress(b"z" * HUGE_BYTES), encoding="gzip")
        elif route == "/redirect":
            self._redirect(query["to"])
        elif route.startswith("/chain/"):
            left = int(route.rsplit("/", 1)[1])
            self._redirect(f"/chain/{left - 1}" if left else "/plain")
        elif route == "/missing":
            self._send(404, "text/html", b"<html><body><h1>Not here</h1><p>Gone.</p></body></html>")
        elif route == "/image":
            self._send(200, "image/png", b"\x89PNG\r\n\x1a\n" + b"\0" * 100)
        elif route == "/slow":
            time.sleep(3)
            self._send(200, "text/plain", b"too late")
        else:
            self._send(404, "text/plain", b"no route")

    def _send(self, status: int, content_type: str, body: bytes, encoding: str = "") -> None:
        self.send_response(status)
        self.send_header("content-type", content_type)
        if encoding:
            self.send_header("content-encoding", encoding)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _redirect(self, location: str) -> None:
        self.send_response(302)
        self.send_header("location", location)
        self.send_header("content-length", "0")
        self.end_headers()

    def _stream_huge(self) -> None:
        self.send_response(200)
        self.send_header("content-type", "text/plain")
        self.end_headers()  # no length: the body ends when the connection closes
        sent = 0
        try:
            while sent < HUGE_BYTES:
                self.wfile.write(CHUNK)
                sent += len(CHUNK)
        except OSError:
            pass  # the client hung up, as it should past its cap
        self.server.huge_sent.append(sent)

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.paths = []
    httpd.huge_sent = []
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    httpd.base = f"http://127.0.0.1:{httpd.server_address[1]}"
    yield httpd
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def allowed(settings):
    settings.SVERM_TOOL_FETCH_ALLOWED_HOSTS = ["127.0.0.1"]
    return settings


@pytest.fixture
def refusing(settings):
    settings.SVERM_TOOL_FETCH_ALLOWED_HOSTS = []
    return settings


def fetch(url: str, tool: HttpFetch | None = None, **arguments) -> str:
    return asyncio.run((tool or HttpFetch()).invoke({"url": url, **arguments}))


def fetch_error(url: str, tool: HttpFetch | None = None, **arguments) -> str:
    with pytest.raises(ToolError) as raised:
        fetch(url, tool, **arguments)
    return str(raised.value)


def split(result: str) -> tuple[dict[str, str], str]:
    head, _, text = result.partition("\n\n")
    return dict(line.split(": ", 1) for line in head.splitlines()), text


# ---------------------------------------------------------------------------------------------
# What the model reads
# ---------------------------------------------------------------------------------------------
def test_an_html_page_reads_as_its_title_and_text(server, allowed):
    header, text = split(fetch(f"{server.base}/page"))
    assert header == {
        "URL": f"{server.base}/page",
        "Status": "200",
        "Title": "The Test Page",
        "Content-Type": "text/html; charset=utf-8",
    }
    assert text.splitlines() == [
        "Main heading",
        "First paragraph with a useful link inside.",
        "Second",
        "line",
        "- one",
        "- two",
    ]
    dropped = ["secret", "color", "late script", "comment", "JavaScript", "template text"]
    dropped += ["svg text", "Search", "Sidebar", "footer", "banner", "Home", "The Test Page"]
    assert [word for word in dropped if word in text] == []


def test_plain_text_and_json_are_returned_as_they_are(server, allowed):
    header, text = split(fetch(f"{server.base}/plain"))
    assert header["Content-Type"] == "text/plain" and "Title" not in header
    assert text == "Just some plain text.\nSecond line."
    header, text = split(fetch(f"{server.base}/json"))
    assert header["Content-Type"] == "application/problem+json"
    assert json.loads(text) == {"answer": 42}


def test_the_charset_of_the_response_decodes_it(server, allowed):
    assert split(fetch(f"{server.base}/latin1"))[1] == "Caf\u00e9 cr\u00e8me"
    header, text = split(fetch(f"{server.base}/latin1-meta"))  # declared by the page itself
    assert header["Title"] == "Caf\u00e9" and text == "Cr\u00e8me br\u00fbl\u00e9e"


def test_max_chars_cuts_the_text_and_says_so(server, allowed):
    _, text = split(fetch(f"{server.base}/long", max_chars=120))
    body, note = text.rsplit("\n", 1)
    assert body == ("0123456789" * 12)
    assert note == "[cut: the text has 50000 characters, 120 shown]"
    _, default = split(fetch(f"{server.base}/long"))
    assert default.startswith("0123456789" * 800 + "\n[cut: the text has 50000 characters, 8000")


def test_a_huge_body_is_read_up_to_the_byte_cap_only(server, allowed):
    started = time.monotonic()
    result = fetch(f"{server.base}/huge", HttpFetch(max_bytes=100_000), max_chars=20_000)
    assert time.monotonic() - started < 5
    header, text = split(result)
    assert "only the first 100000 bytes were read" in header["Note"]
    assert text.startswith("x" * 20_000 + "\n[cut: the text has 100000 characters, 20000 shown]")
    deadline = time.monotonic() + 5
    while not server.huge_sent and time.monotonic() < deadline:
        time.sleep(0.01)
    assert server.huge_sent and server.huge_sent[0] < HUGE_BYTES  # the client hung up early


def test_a_compressed_body_is_inflated_only_up_to_the_byte_cap(server, allowed):
    header, text = split(fetch(f"{server.base}/gzip-bomb", HttpFetch(max_bytes=1_000)))
    assert "only the first 1000 bytes were read" in header["Note"]
    assert text == "z" * 1_000


# ---------------------------------------------------------------------------------------------
# Redirects: followed, at most 5, each hop checked again
# ---------------------------------------------------------------------------------------------
def test_a_redirect_to_an_allowed_target_is_followed(server, allowed):
    header, text = split(fetch(f"{server.base}/redirect?to=/plain"))
    assert header["URL"] == f"{server.base}/plain"
    assert text.startswith("Just some plain text.")
    assert server.paths == ["/redirect?to=/plain", "/plain"]


@pytest.mark.parametrize(
    ("location", "reason"),
    [
        ("http://169.254.169.254/latest/meta-data", "link-local address"),
        ("http://localhost:{port}/plain", "loopback name"),
        ("http://[::1]:{port}/plain", "loopback address"),
        ("http://10.0.0.1/", "private address"),
        ("file:///etc/passwd", "Only http and https fetch URLs are allowed."),
    ],
)
def test_a_redirect_to_a_refused_destination_is_refused(server, allowed, location, reason):
    port = server.server_address[1]
    message = fetch_error(f"{server.base}/redirect?to={location.format(port=port)}")
    assert message.startswith("The page redirected to a refused destination: ")
    assert reason in message
    assert len(server.paths) == 1  # the refused hop was never requested


def test_five_redirects_are_followed_and_a_sixth_is_refused(server, allowed):
    assert split(fetch(f"{server.base}/chain/4"))[0]["URL"] == f"{server.base}/plain"  # 5 hops
    message = fetch_error(f"{server.base}/chain/5")
    assert message.startswith("Too many redirects: 5 followed")
    assert server.paths[-1] == "/chain/0"


# ---------------------------------------------------------------------------------------------
# The SSRF guard and the errors the model reads
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://127.0.0.1:{port}/plain", "points to a loopback address (127.0.0.1)"),
        ("http://0x7f000001:{port}/plain", "points to a loopback address (127.0.0.1)"),
        ("http://[::1]:{port}/plain", "points to a loopback address (::1)"),
        ("http://localhost:{port}/plain", "is a loopback name"),
        ("http://169.254.169.254/latest/meta-data", "points to a link-local address"),
        ("http://[::ffff:127.0.0.1]/", "points to an IPv4-mapped IPv6 address"),
    ],
)
def test_non_public_destinations_are_refused_without_the_allowlist(server, refusing, url, reason):
    message = fetch_error(url.format(port=server.server_address[1]))
    assert message.startswith("The fetch host ") and reason in message
    assert server.paths == []


@pytest.mark.parametrize("url", ["file:///etc/passwd", "ftp://93.184.216.34/x", "example.com/"])
def test_only_http_and_https_are_fetched(url, refusing):
    assert fetch_error(url).startswith("Only http and https URLs can be fetched")


def test_an_http_error_names_the_status_and_the_start_of_the_page(server, allowed):
    message = fetch_error(f"{server.base}/missing")
    assert message == f"HTTP 404 Not Found from {server.base}/missing: Not here Gone."


def test_binary_content_is_refused_naming_its_type(server, allowed):
    message = fetch_error(f"{server.base}/image")
    assert message.startswith(f"The content at {server.base}/image is image/png")


def test_a_slow_server_times_out(server, allowed):
    started = time.monotonic()
    message = fetch_error(f"{server.base}/slow", HttpFetch(timeout_seconds=0.5))
    assert time.monotonic() - started < 2.5
    assert message == f"Fetching {server.base}/slow took longer than 0.5 s; gave up."


def test_a_refused_connection_is_reported(allowed):
    message = fetch_error(f"http://127.0.0.1:{free_port()}/")
    assert message.startswith("Could not connect to 127.0.0.1: ")


def test_a_name_that_does_not_resolve_is_reported(refusing, monkeypatch):
    def fail(*args, **kwargs):
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", fail)
    message = fetch_error("https://no-such-host.example/")
    assert (
        message
        == "The host no-such-host.example could not be resolved (Name or service not known)."
    )


# ---------------------------------------------------------------------------------------------
# The tool in the engine
# ---------------------------------------------------------------------------------------------
def test_the_spec_is_a_valid_json_schema_the_engine_enforces(server, allowed):
    tool = HttpFetch()
    assert tool.spec.name == "http_fetch"
    jsonschema.Draft202012Validator.check_schema(tool.spec.parameters)
    toolbox = Toolbox({"http_fetch": tool})

    def call(arguments: dict) -> str:
        done = asyncio.run(
            toolbox.run(["http_fetch"], ToolCall("c1", "http_fetch", json.dumps(arguments)))
        )
        return done.content

    assert call({"url": f"{server.base}/plain"}).startswith(f"URL: {server.base}/plain\n")
    assert "invalid arguments: max_chars" in call({"url": f"{server.base}/plain", "max_chars": 5})
    assert "invalid arguments" in call({"url": f"{server.base}/plain", "method": "POST"})
    assert call({"url": "http://127.0.0.1:1/", "max_chars": 20_001}).startswith("Tool call failed")


def test_importing_the_tool_loads_neither_httpx_nor_beautifulsoup():
    probe = (
        "import json, sys; import tools.fetch; "
        "print(json.dumps(sorted({'httpx', 'bs4'} & {n.split('.')[0] for n in sys.modules})))"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout.strip().splitlines()[-1]) == []
