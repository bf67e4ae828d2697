"""A real OpenAI-compatible chat-completions HTTP server for tests: the paid LLM is the one part
of a run that is outside sverm, so tests put this in its place and drive it over real HTTP.

It speaks `POST /v1/chat/completions` (JSON in, JSON out, `usage` included) on a free port, from
a thread of the test process. A manager asked for "a JSON array" gets one; every other prompt
gets words, one per token, never more than the request's `max_tokens` unless the test asks the
server to over-report. Tests steer it through `LLMServer.behaviour` and read what it was asked in
`LLMServer.requests` (each attempt, answered or not, as a provider would bill it).

    with LLMServer() as llm:
        env = {"OPENAI_API_KEY": "test", "OPENAI_BASE_URL": llm.base_url, ...}
"""

import json
import math
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

WORDS = (
    "market", "supply", "policy", "cost", "demand", "grid", "storage", "export", "risk",
    "capacity", "investment", "pipeline", "forecast", "emissions", "subsidy", "trial",
)  # fmt: skip


@dataclass
class Behaviour:
    """How the server answers; a test may change it while the server runs."""

    reply_tokens: int = 40  # words in an ordinary reply (capped at the request's max_tokens)
    delay_seconds: float = 0.0  # before answering
    slow_first: int = 0  # the first N requests wait slow_seconds before answering
    slow_seconds: float = 0.0
    freeze: bool = False  # never answer (the client's timeout fires)
    over_report: int = 0  # report this many completion tokens more than max_tokens
    fail_status: int = 0  # answer every request with this HTTP status (0: answer normally)
    fail_first: int = 0  # answer the first N requests with HTTP 500
    # Ask for this tool call, {"name": ..., "arguments": {...}}, when the request offers that
    # tool (and lets it be called) and no tool has answered yet in its messages.
    tool_call: dict | None = None


@dataclass
class Asked:
    """One request the server received."""

    model: str
    max_tokens: int | None
    messages: list[dict]
    answered: bool = False
    completion_tokens: int = 0
    prompt_tokens: int = 0
    tools: list[str] = field(default_factory=list)  # the names of the tools offered
    tool_choice: str | None = None


@dataclass
class _State:
    behaviour: Behaviour = field(default_factory=Behaviour)
    requests: list[Asked] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    stop: threading.Event = field(default_factory=threading.Event)


def prompt_tokens(messages: list[dict]) -> int:
    """Tokens this server bills for a prompt: ceil(characters / 4), below any UTF-8 bound."""
    return math.ceil(sum(len(str(message.get("content", ""))) for message in messages) / 4)


def reply_text(model: str, messages: list[dict], words: int) -> str:
    last = str(messages[-1].get("content", "")) if messages else ""
    if "JSON array" in last:
        return json.dumps([f"Subtask {n}: {WORDS[n]} and {WORDS[n + 4]}" for n in range(3)])
    chosen = [WORDS[(len(last) + n) % len(WORDS)] for n in range(max(words - 2, 1))]
    return " ".join([model, "says", *chosen])[: 8 * words]


class _Handler(BaseHTTPRequestHandler):
    state: _State
    protocol_version = "HTTP/1.1"

    def log_message(self, format, *args) -> None:  # quiet: tests read `requests`
        return

    def do_GET(self) -> None:
        if self.path.rstrip("/").endswith("/models"):
            self._send(200, {"object": "list", "data": [{"id": "any", "object": "model"}]})
        else:
            self._send(404, {"error": {"message": "not found", "type": "invalid_request_error"}})

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length) or b"{}")
        if not self.path.rstrip("/").endswith("/chat/completions"):
            self._send(404, {"error": {"message": "not found", "type": "invalid_request_error"}})
            return
        limit = body.get("max_tokens", body.get("max_completion_tokens"))
        asked = Asked(model=body.get("model", ""), max_tokens=limit, messages=body["messages"])
        asked.tools = [tool["function"]["name"] for tool in body.get("tools", [])]
        asked.tool_choice = body.get("tool_choice")
        state = self.state
        with state.lock:
            state.requests.append(asked)
            number = len(state.requests)
            behaviour = Behaviour(**vars(state.behaviour))
        if behaviour.freeze:
            state.stop.wait(600)
            return
        delay = behaviour.delay_seconds
        if number <= behaviour.slow_first:
            delay += behaviour.slow_seconds
        if delay and state.stop.wait(delay):
            return
        if behaviour.fail_status or number <= behaviour.fail_first:
            status = behaviour.fail_status or 500
            self._send(status, {"error": {"message": "test failure", "type": "server_error"}})
            return
        words = behaviour.reply_tokens if limit is None else min(behaviour.reply_tokens, limit)
        text = reply_text(asked.model, asked.messages, words)
        completion = len(text.split())
        message: dict = {"role": "assistant", "content": text}
        wanted = behaviour.tool_call
        if (
            wanted
            and wanted["name"] in asked.tools
            and asked.tool_choice != "none"
            and not any(m.get("role") == "tool" for m in asked.messages)
        ):
            arguments = json.dumps(wanted.get("arguments", {}))
            call = {"id": f"call_{number}", "type": "function",
                    "function": {"name": wanted["name"], "arguments": arguments}}  # fmt: skip
            message = {"role": "assistant", "content": None, "tool_calls": [call]}
            completion = math.ceil(len(arguments) / 4) + 5
        if behaviour.over_report and limit is not None:
            completion = limit + behaviour.over_report
        asked.prompt_tokens = prompt_tokens(asked.messages)
        asked.completion_tokens = completion
        asked.answered = True
        self._send(
            200,
            {
                "id": f"chatcmpl-{number}",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": asked.model,
                "choices": [
                    {
                        "index": 0,
                        "message": message,
                        "finish_reason": "tool_calls" if "tool_calls" in message else "stop",
                    }
                ],
                "usage": {
                    "prompt_tokens": asked.prompt_tokens,
                    "completion_tokens": completion,
                    "total_tokens": asked.prompt_tokens + completion,
                },
            },
        )

    def _send(self, status: int, payload: dict) -> None:
        data = json.dumps(payload).encode()
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):  # the client gave up (its timeout)
            pass


class LLMServer:
    """The server on 127.0.0.1 and a free port, serving from a daemon thread until `close()`."""

    def __init__(self) -> None:
        self._state = _State()
        handler = type("Handler", (_Handler,), {"state": self._state})
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._httpd.daemon_threads = True
        self.port = self._httpd.server_address[1]
        self.base_url = f"http://127.0.0.1:{self.port}/v1"
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)
        self._thread.start()

    @property
    def behaviour(self) -> Behaviour:
        return self._state.behaviour

    @property
    def requests(self) -> list[Asked]:
        with self._state.lock:
            return list(self._state.requests)

    def provider_env(self) -> dict[str, str]:
        """The environment that routes every built-in template's models here (OpenAI's and
        DeepSeek's), as a user would configure two real providers."""
        return {
            "OPENAI_API_KEY": "sk-test-openai",
            "OPENAI_BASE_URL": self.base_url,
            "DEEPSEEK_API_KEY": "sk-test-deepseek",
            "DEEPSEEK_BASE_URL": self.base_url,
        }

    def provider_settings(self) -> dict[str, dict]:
        """The same as `settings.LLM_PROVIDERS`, for tests in the test process."""
        config = {"base_url": self.base_url, "timeout": 10.0}
        return {
            "openai": {"api_key": "sk-test-openai", **config},
            "deepseek": {"api_key": "sk-test-deepseek", **config},
        }

    def close(self) -> None:
        self._state.stop.set()
        self._httpd.shutdown()
        self._httpd.server_close()

    def __enter__(self) -> "LLMServer":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
