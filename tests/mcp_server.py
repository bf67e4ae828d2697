"""A real MCP server for the tool tests, written with the official SDK and served over its
streamable HTTP transport by Uvicorn on loopback, from a thread of the test process.

Its tools: `echo` (text back), `huge` (a result of `chars` characters), `slow` (answers after
`seconds`), `broken` (raises), `fails` (an error result). Every request needs
`Authorization: Bearer <TOKEN>` (401 without). `/garbage` answers 200 with text that is not
MCP, and `/silent` never answers, for the malformed and frozen servers. `calls` lists the tool
calls it received."""

import asyncio
import socket
import threading
import time

import uvicorn
from mcp.server.mcpserver import MCPServer

TOKEN = "t0ken-mcp"


def _server(calls: list[tuple[str, dict]]) -> MCPServer:
    server = MCPServer("sverm-test-tools")

    @server.tool(description="Echo the text back.")
    def echo(text: str) -> str:
        calls.append(("echo", {"text": text}))
        return f"echo: {text}"

    @server.tool(description="A very long result.")
    def huge(chars: int) -> str:
        calls.append(("huge", {"chars": chars}))
        return "h" * chars

    @server.tool(description="Answers after a while.")
    async def slow(seconds: float) -> str:
        calls.append(("slow", {"seconds": seconds}))
        await asyncio.sleep(seconds)
        return "finally"

    @server.tool(description="Raises.")
    def broken() -> str:
        calls.append(("broken", {}))
        raise ValueError("kaput")

    return server


class McpTestServer:
    """`url` is the MCP endpoint; `garbage_url` and `silent_url` misbehave."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict]] = []
        app = _server(self.calls).streamable_http_app()

        async def guarded(scope, receive, send):
            if scope["type"] == "http":
                if scope["path"] == "/garbage":
                    await _plain(send, 200, b"this is not JSON-RPC")
                    return
                if scope["path"] == "/silent":
                    await asyncio.sleep(3600)
                    return
                headers = dict(scope["headers"])
                if headers.get(b"authorization") != f"Bearer {TOKEN}".encode():
                    await _plain(send, 401, b"unauthorized")
                    return
            await app(scope, receive, send)

        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{port}/mcp"
        self.garbage_url = f"http://127.0.0.1:{port}/garbage"
        self.silent_url = f"http://127.0.0.1:{port}/silent"
        config = uvicorn.Config(
            guarded, log_level="warning", lifespan="on", timeout_graceful_shutdown=1
        )
        self._uvicorn = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._uvicorn.run, kwargs={"sockets": [sock]}, daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._uvicorn.started:
            if time.monotonic() > deadline:
                raise RuntimeError("the MCP test server did not start")
            time.sleep(0.01)

    def close(self) -> None:
        self._uvicorn.should_exit = True
        self._thread.join(timeout=10)

    def __enter__(self) -> "McpTestServer":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


async def _plain(send, status: int, body: bytes) -> None:
    headers = [(b"content-type", b"text/plain"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
