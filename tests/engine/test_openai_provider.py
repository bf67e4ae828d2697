"""OpenAIProvider through the real `openai` SDK against a local HTTP server speaking the
chat-completions protocol: usage mapping, one request per attempt (the run retries, under its
budget), timeouts, failures that say whether to retry and whether they may have been billed."""

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from swarms.engine.providers import (
    CompletionRequest,
    Message,
    OpenAIProvider,
    ProviderError,
    ProviderRouter,
)
from swarms.engine.runner import run_swarm

from .fakes import MODEL, CallbackLog, make_definition, run, run_input

pytestmark = pytest.mark.anyio

# The SDK honours retry-after-ms, which keeps its backoff between retries short here.
FAST_RETRY = {"retry-after-ms": "10", "retry-after": "0"}


@dataclass
class Reply:
    status: int = 200
    content: str = "Hello from the model."
    usage: dict | None = field(
        default_factory=lambda: {"prompt_tokens": 12, "completion_tokens": 5}
    )
    headers: dict = field(default_factory=dict)
    delay: float = 0.0


class FakeOpenAI:
    """Serves scripted replies in order (then the last one again) and records request bodies."""

    def __init__(self) -> None:
        self.script: list[Reply] = []
        self.bodies: list[dict] = []
        self.paths: list[str] = []
        self._lock = threading.Lock()

    def next_reply(self) -> Reply:
        with self._lock:
            return self.script.pop(0) if len(self.script) > 1 else (self.script or [Reply()])[0]


def make_handler(fake: FakeOpenAI):
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            with fake._lock:
                fake.bodies.append(body)
                fake.paths.append(self.path)
            reply = fake.next_reply()
            time.sleep(reply.delay)
            if self.path != "/v1/chat/completions":
                reply = Reply(status=404)
            if reply.status == 200:
                payload = {
                    "id": "chatcmpl-test",
                    "object": "chat.completion",
                    "created": 1_700_000_000,
                    "model": body["model"],
                    "choices": [
                        {
                            "index": 0,
                            "message": {"role": "assistant", "content": reply.content},
                            "finish_reason": "stop",
                        }
                    ],
                }
                if reply.usage is not None:
                    payload["usage"] = {
                        **reply.usage,
                        "total_tokens": sum(reply.usage.values()),
                    }
            else:
                payload = {"error": {"message": f"scripted {reply.status}", "type": "test"}}
            data = json.dumps(payload).encode()
            try:
                self.send_response(reply.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up (timeout test)

        def log_message(self, *args):
            pass

    return Handler


class QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        pass


@pytest.fixture
def server() -> Iterator[tuple[str, FakeOpenAI]]:
    fake = FakeOpenAI()
    httpd = QuietServer(("127.0.0.1", 0), make_handler(fake))
    thread = threading.Thread(target=httpd.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/v1", fake
    finally:
        httpd.shutdown()
        httpd.server_close()


REQUEST = CompletionRequest(
    model=MODEL,
    messages=(Message("system", "Be brief."), Message("user", "Say hello.")),
    max_tokens=64,
    agent_id="writer",
)


async def complete(base_url: str, request=REQUEST, **options):
    provider = OpenAIProvider(base_url=base_url, api_key="sk-test", **options)
    try:
        return await provider.complete(request)
    finally:
        await provider.aclose()


async def test_success_maps_text_and_usage(server):
    base_url, fake = server
    fake.script = [Reply(content="Hello!", usage={"prompt_tokens": 21, "completion_tokens": 3})]
    completion = await complete(base_url)
    assert (completion.text, completion.tokens_in, completion.tokens_out) == ("Hello!", 21, 3)
    (body,) = fake.bodies
    assert fake.paths == ["/v1/chat/completions"]
    assert body["model"] == MODEL
    assert body["max_tokens"] == 64
    assert body["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Say hello."},
    ]


async def test_max_completion_tokens_can_be_sent_instead(server):
    base_url, fake = server
    await complete(base_url, max_tokens_param="max_completion_tokens")
    assert fake.bodies[0]["max_completion_tokens"] == 64
    assert "max_tokens" not in fake.bodies[0]


async def test_missing_usage_is_charged_at_safe_upper_bounds(server):
    base_url, fake = server
    fake.script = [Reply(content="Hi", usage=None)]
    provider = OpenAIProvider(base_url=base_url, api_key="sk-test")
    completion = await provider.complete(REQUEST)
    await provider.aclose()
    assert completion.tokens_in == provider.max_prompt_tokens(REQUEST.messages)
    assert completion.tokens_out == 2


async def test_one_complete_is_one_request_and_says_how_to_retry_a_429(server):
    base_url, fake = server
    fake.script = [Reply(status=429, headers=FAST_RETRY), Reply(content="after retry")]
    with pytest.raises(ProviderError, match=r"HTTP 429") as raised:
        await complete(base_url)
    assert len(fake.bodies) == 1  # the SDK does not retry: sverm does, under the budget
    assert raised.value.retryable and not raised.value.maybe_billed
    assert raised.value.retry_after == pytest.approx(0.01)


STATUSES = [(500, True), (503, True), (408, True), (401, False), (400, False), (404, False)]


@pytest.mark.parametrize(("status", "retryable"), STATUSES)
async def test_status_errors_say_whether_a_retry_can_help(server, status, retryable):
    base_url, fake = server
    fake.script = [Reply(status=status)]
    with pytest.raises(ProviderError, match=rf"HTTP {status}") as raised:
        await complete(base_url)
    assert (raised.value.retryable, raised.value.maybe_billed) == (retryable, False)
    assert len(fake.bodies) == 1


async def test_a_run_retries_a_failed_call_and_pays_only_the_answer(server):
    base_url, fake = server
    fake.script = [Reply(status=500), Reply(status=429, headers=FAST_RETRY), Reply()]
    provider = OpenAIProvider(base_url=base_url, api_key="sk-test")
    result, log = await run(run_input(make_definition("sequential")), provider)
    await provider.aclose()
    assert result.status == "completed", result.error_message
    assert len(fake.bodies) == 5  # the first call took three attempts, the next two one each
    assert len(result.usage) == 3
    assert len(log.of_type("agent.started")) == 3  # a retry is the same call, not a new one


async def test_a_permanent_500_fails_the_run_after_the_allowed_attempts(server):
    base_url, fake = server
    fake.script = [Reply(status=500)]
    provider = OpenAIProvider(base_url=base_url, api_key="sk-test")
    result, _ = await run(run_input(make_definition("sequential")), provider)
    await provider.aclose()
    assert (result.status, result.error_code) == ("failed", "provider_error")
    assert "HTTP 500" in result.error_message and "after 3 attempts" in result.error_message
    assert len(fake.bodies) == 3
    assert result.total_cost_usd == 0


async def test_client_errors_are_not_retried(server):
    base_url, fake = server
    fake.script = [Reply(status=401)]
    provider = OpenAIProvider(base_url=base_url, api_key="sk-test")
    result, _ = await run(run_input(make_definition("sequential")), provider)
    await provider.aclose()
    assert (result.status, result.error_code) == ("failed", "provider_error")
    assert len(fake.bodies) == 1


async def test_timeout_raises_a_retryable_provider_error_that_may_have_been_billed(server):
    base_url, fake = server
    fake.script = [Reply(delay=1.0)]
    started = time.monotonic()
    with pytest.raises(ProviderError, match="timed out") as raised:
        await complete(base_url, timeout=0.2)
    assert time.monotonic() - started < 0.9
    assert raised.value.retryable and raised.value.maybe_billed


async def test_a_request_timeout_of_its_own_shortens_the_clients(server):
    base_url, fake = server
    fake.script = [Reply(delay=1.0)]
    request = CompletionRequest(
        model=MODEL, messages=REQUEST.messages, max_tokens=64, agent_id="w", timeout_seconds=0.2
    )
    started = time.monotonic()
    with pytest.raises(ProviderError, match="timed out"):
        await complete(base_url, request=request, timeout=30)
    assert time.monotonic() - started < 0.9


async def test_unreachable_endpoint_raises_a_retryable_error_that_was_not_billed():
    with pytest.raises(ProviderError, match="cannot reach") as raised:
        await complete("http://127.0.0.1:9/v1", timeout=2)
    assert raised.value.retryable and not raised.value.maybe_billed


async def test_a_swarm_runs_through_the_sdk(server):
    base_url, fake = server
    fake.script = [
        Reply(content="Step output.", usage={"prompt_tokens": 40, "completion_tokens": 10})
    ]
    provider = OpenAIProvider(base_url=base_url, api_key="sk-test", name="local")
    log = CallbackLog()
    result = await run_swarm(
        run_input(make_definition("sequential")),
        router=ProviderRouter(routes={}, default=provider),
        on_event=log.on_event,
        on_usage=log.on_usage,
    )
    await provider.aclose()
    assert result.status == "completed"
    assert result.output == "Step output."
    assert [(u.provider, u.tokens_in, u.tokens_out) for u in result.usage] == [
        ("local", 40, 10)
    ] * 3
    assert result.total_cost_usd == 3 * (40 * Decimal("0.15") + 10 * Decimal("0.60")) / 1_000_000
    assert log.events[0].data["simulated"] is False
    assert len(fake.bodies) == 3
