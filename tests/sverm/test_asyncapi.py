"""/asyncapi.json, the AsyncAPI 3 document of the WebSocket streams (sverm/asyncapi.py): valid
against the official AsyncAPI 3.0.0 JSON Schema (tests/sverm/data/asyncapi-3.0.0.json: from npm's
`@asyncapi/specs` 6.11.1, Apache-2.0, see the README beside it), served without a credential and
linked from /docs, and true to what a running server sends on each of the three run routes (the
batch stream's: tests/batches/test_stream.py)."""

import asyncio
import contextlib
import copy
import json
import re
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest
import yaml
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT7
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from sverm.asyncapi import asyncapi_document, event_data
from swarms.engine.events import TERMINAL_EVENTS
from swarms.models import RunEventType
from tests.processes import embedded_server_env, manage, start_embedded_server, stop

ASYNCAPI_SCHEMA = json.loads((Path(__file__).parent / "data" / "asyncapi-3.0.0.json").read_text())
DOCUMENT_URI = "urn:sverm:asyncapi"
RUN_CHANNELS = ("v1RunStream", "runStream")
CHANNELS = (*RUN_CHANNELS, "workspaceStream", "batchStream")


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    return copy.deepcopy(asyncapi_document())


def asyncapi_errors(document: dict[str, Any]) -> list[str]:
    validator = jsonschema.Draft7Validator(ASYNCAPI_SCHEMA)
    return [
        f"{'/'.join(map(str, error.absolute_path))}: {error.message[:200]}"
        for error in validator.iter_errors(document)
    ]


def resolve(document: dict[str, Any], ref: str) -> Any:
    """A local `#/…` JSON pointer's target in the document."""
    assert ref.startswith("#/"), ref
    target = document
    for part in ref[2:].split("/"):
        target = target[part.replace("~1", "/").replace("~0", "~")]
    return target


def refs_in(value: Any):
    if isinstance(value, dict):
        if isinstance(value.get("$ref"), str):
            yield value["$ref"]
        for item in value.values():
            yield from refs_in(item)
    elif isinstance(value, list):
        for item in value:
            yield from refs_in(item)


class ChannelMessages:
    """A channel's message payload schemas, by the `type` each one's messages carry, checked with
    jsonschema against the whole document (so a payload's `$ref`s resolve in it)."""

    def __init__(self, document: dict[str, Any], channel: str) -> None:
        registry = Registry().with_resource(
            DOCUMENT_URI, Resource.from_contents(document, default_specification=DRAFT7)
        )
        self.validators = {}
        self.data_keys = {}
        for ref in document["channels"][channel]["messages"].values():
            pointer = ref["$ref"]
            message = resolve(document, pointer)
            schema = {"$ref": f"{DOCUMENT_URI}{pointer}/payload"}
            self.validators[message["name"]] = jsonschema.Draft7Validator(schema, registry=registry)
            narrowed = message["payload"].get("allOf", [{}])[-1].get("properties", {})
            if "data" in narrowed:
                self.data_keys[message["name"]] = set(narrowed["data"]["properties"])

    def check(self, message: dict[str, Any]) -> None:
        assert message.get("type") in self.validators, f"undocumented message: {message}"
        errors = [error.message for error in self.validators[message["type"]].iter_errors(message)]
        assert errors == [], (message, errors)
        # The payload schemas leave `data` open to new keys; the document still lists each key
        # the server sends today.
        if message["type"] in self.data_keys:
            assert set(message["data"]) <= self.data_keys[message["type"]], message
        datetime.fromisoformat(message["ts"].replace("Z", "+00:00"))  # format: date-time


# --- the document -------------------------------------------------------------------------------
def test_the_document_validates_against_the_official_asyncapi_3_schema(document):
    assert document["asyncapi"] == "3.0.0"
    assert asyncapi_errors(document) == []


BREAKAGES = {
    "no version": lambda d: d.pop("asyncapi"),
    "a 2.x version": lambda d: d.update(asyncapi="2.6.0"),
    "a 2.x operation action": lambda d: d["operations"]["sendRunEvents"].update(action="subscribe"),
    "a server without protocol": lambda d: d["servers"]["ws"].pop("protocol"),
    "a parameter with a 2.x schema": lambda d: d["channels"]["runStream"]["parameters"][
        "run_id"
    ].update(schema={"type": "string"}),
    "a bad payload schema": lambda d: d["components"]["schemas"]["RunEvent"].update(type=5),
    "a bad ws binding": lambda d: d["channels"]["workspaceStream"]["bindings"]["ws"].update(
        method="PUT"
    ),
    "an inline message in an operation": lambda d: d["operations"]["sendRunStatuses"].update(
        messages=[d["components"]["messages"]["run_status"]]
    ),
}


@pytest.mark.parametrize("breakage", BREAKAGES)
def test_the_validation_runs_a_broken_copy_fails(document, breakage):
    broken = copy.deepcopy(document)
    BREAKAGES[breakage](broken)
    assert asyncapi_errors(broken) != []


def test_references_channels_and_operations_hang_together(document):
    """What the AsyncAPI parser checks beyond the JSON Schema."""
    for ref in refs_in(document):
        resolve(document, ref)
    assert set(document["channels"]) == set(CHANNELS)
    for channel in document["channels"].values():
        assert set(re.findall(r"{(\w+)}", channel["address"])) == set(channel["parameters"])
    for operation in document["operations"].values():
        channel = operation["channel"]["$ref"]
        assert {m["$ref"] for m in operation["messages"]} == {
            f"{channel}/messages/{name}" for name in resolve(document, channel)["messages"]
        }


def test_every_event_type_is_a_message_of_both_run_streams(document):
    assert set(event_data()) == set(RunEventType.values)
    for channel in RUN_CHANNELS:
        names = {
            resolve(document, ref["$ref"])["name"]
            for ref in document["channels"][channel]["messages"].values()
        }
        assert names == set(RunEventType.values)
    terminal = {
        message["name"]
        for message in document["components"]["messages"].values()
        if "terminal" in message["title"]
    }
    assert terminal == set(TERMINAL_EVENTS)


@pytest.mark.parametrize("channel", CHANNELS)
def test_every_example_matches_its_message(document, channel):
    messages = ChannelMessages(document, channel)
    for ref in document["channels"][channel]["messages"].values():
        for example in resolve(document, ref["$ref"])["examples"]:
            messages.check(example["payload"])


# --- served and linked --------------------------------------------------------------------------
@pytest.mark.django_db
def test_the_document_is_served_as_json_and_yaml_without_a_credential(client, document):
    response = client.get("/asyncapi.json")
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    assert response.json() == document
    response = client.get("/asyncapi.yaml")
    assert response.status_code == 200
    assert response["Content-Type"] == "application/yaml"
    assert yaml.safe_load(response.content) == document
    assert client.post("/asyncapi.json").status_code == 405


@pytest.mark.django_db
def test_the_api_docs_link_it(client):
    schema = client.get("/openapi.json").json()
    assert "[/asyncapi.json](/asyncapi.json)" in schema["info"]["description"]
    assert schema["externalDocs"]["url"] == "/asyncapi.json"
    assert client.get("/docs").status_code == 200


# --- what a running server sends ----------------------------------------------------------------
API_KEY = re.compile(r"^API key: (sk-sverm-\S+)$", re.M)
WORKSPACE = re.compile(r"^Workspace: .* (wsp_\S+) \(plan", re.M)
TIMEOUT = 30.0
ENDED = ("completed", "failed", "cancelled")


async def read_until_closed(ws, until=None) -> tuple[list, int | None]:
    """Every message until the server closes the stream, and its close code; or until
    `until(message)` holds (the client then closes it: no code)."""
    messages = []
    try:
        while True:
            messages.append(json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT)))
            if until is not None and until(messages[-1]):
                return messages, None
    except ConnectionClosed as closed:
        return messages, closed.rcvd.code if closed.rcvd else None


async def read_stream(url: str, headers: dict | None = None, *, until=None):
    async with connect(url, additional_headers=headers, open_timeout=TIMEOUT) as ws:
        return await read_until_closed(ws, until)


def close_code(document: dict[str, Any], channel: str, name: str) -> int:
    (code,) = (
        c["code"] for c in document["channels"][channel]["x-close-codes"] if c["name"] == name
    )
    return code


async def check_streams(base: str, key: str, workspace_id: str) -> None:
    ws_base = "ws" + base.removeprefix("http")
    async with (
        httpx.AsyncClient(base_url=base, timeout=TIMEOUT) as http,
        contextlib.AsyncExitStack() as stack,
    ):
        served = await http.get("/asyncapi.json")  # no credential
        assert served.status_code == 200
        document = served.json()
        checks = {channel: ChannelMessages(document, channel) for channel in CHANNELS}

        started: dict[str, str] = {}

        def ended(message: dict) -> bool:
            return message["run_id"] == started.get("run") and message["status"] in ENDED

        # A workspace stream open before the run starts (once the handshake is done it is in
        # the workspace's group): only live status messages.
        workspace_url = f"{ws_base}/api/workspaces/{workspace_id}/stream?token={key}"
        live_ws = await stack.enter_async_context(connect(workspace_url, open_timeout=TIMEOUT))
        live = asyncio.create_task(read_until_closed(live_ws, until=ended))
        created = await http.post(
            "/v1/swarms",
            headers={"Authorization": f"Bearer {key}"},
            json={"template": "research-swarm-v1", "task": "Map the hydrogen economy",
                  "max_budget_usd": 5},
        )  # fmt: skip
        assert created.status_code == 201, created.text
        run_id = started["run"] = created.json()["swarm_id"]
        streams = {
            # The seed 002 path, with the header instead of `?token=`.
            "v1RunStream": read_stream(
                f"{ws_base}/v1/swarms/{run_id}/stream", {"Authorization": f"Bearer {key}"}
            ),
            "runStream": read_stream(f"{ws_base}/api/runs/{run_id}/stream?token={key}"),
            # Connected while the run is active: a snapshot with it first.
            "workspaceStream": read_stream(workspace_url, until=ended),
        }
        results = dict(zip(streams, await asyncio.gather(*streams.values()), strict=True))
        results["live"] = await live

        normal = close_code(document, "runStream", "normal")
        for channel in RUN_CHANNELS:
            messages, code = results[channel]
            for message in messages:
                checks[channel].check(message)
            assert [m["seq"] for m in messages] == list(range(1, len(messages) + 1))
            assert {m["run_id"] for m in messages} == {run_id}
            assert messages[-1]["type"] in TERMINAL_EVENTS
            assert code == normal
        assert results["v1RunStream"][0] == results["runStream"][0]
        events = results["runStream"][0]
        assert len(events) > 5

        for name in ("workspaceStream", "live"):
            statuses, _ = results[name]
            for message in statuses:
                checks["workspaceStream"].check(message)
            assert statuses[-1]["status"] == "completed", statuses
        snapshot = results["workspaceStream"][0][0]
        assert snapshot["run_id"] == run_id and snapshot["status"] in ("queued", "running")
        assert results["live"][0][0]["status"] == "running"  # its run.started

        # Resuming: every stored event after `after`, then 1000; after the end, 1000 at once.
        resumed, code = await read_stream(f"{ws_base}/api/runs/{run_id}/stream?after=3&token={key}")
        assert (resumed, code) == (events[3:], normal)
        last = events[-1]["seq"]
        url = f"{ws_base}/v1/swarms/{run_id}/stream?after={last}&token={key}"
        assert await read_stream(url) == ([], normal)

        # Refusals close with the documented codes, before any message.
        refusals = [
            ("runStream", f"/api/runs/{run_id}/stream?token=sk-sverm-nope", "unauthorized"),
            ("v1RunStream", f"/v1/swarms/{run_id}/stream", "unauthorized"),
            ("workspaceStream", f"/api/workspaces/{workspace_id}/stream?token=x", "unauthorized"),
            ("runStream", f"/api/runs/{run_id}/stream?after=-1&token={key}", "bad_request"),
            ("v1RunStream", f"/v1/swarms/run_nothing/stream?token={key}", "not_found"),
            ("workspaceStream", f"/api/workspaces/wsp_nothing/stream?token={key}", "not_found"),
        ]
        for channel, path, name in refusals:
            assert await read_stream(ws_base + path) == ([], close_code(document, channel, name))


def test_a_running_server_sends_what_the_document_says(tmp_path):
    # Three rounds of simulated calls at 0.3 s: the run lasts about a second, long enough for
    # a workspace stream opened after its creation to find it active in the snapshot.
    env = embedded_server_env(tmp_path, SVERM_SIMULATED_LATENCY="0.3")
    manage(env, "migrate", "--noinput")
    out = manage(env, "bootstrap", "--email", "asyncapi@example.com", "--plan", "team")
    key, workspace_id = API_KEY.search(out).group(1), WORKSPACE.search(out).group(1)
    process, base, _ = start_embedded_server(env, tmp_path)
    try:
        asyncio.run(check_streams(base, key, workspace_id))
    finally:
        stop(process)
