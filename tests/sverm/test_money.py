"""One money format on every surface (sverm/money.py, shown by sverm/api/money.py): USD as a
JSON number rounded down to 6 decimal places, as seed 002 shows costs (`"cost_usd": 0.012`),
whether read from `/v1`, `/api`, a stream's messages, a webhook's payload or the stored events
as the API renders them; the ledger and the run row keep the exact amount. Messages show
dollars as `usd` writes them."""

import json
from decimal import Decimal

import pytest
from asgiref.sync import async_to_sync

from sverm.api.money import MONEY_DESCRIPTION, money_fields_rendered
from sverm.money import money, money_exact, money_json, usd
from swarms.models import Run
from swarms.realtime import status_message
from swarms.webhooks import delivery
from tests.runs.conftest import (
    decimal_json,
    executing,  # noqa: F401  (runs really execute)
    is_json_number,
    wait_terminal,
)
from tests.streams.conftest import jwt_for, open_stream


def places(amount: Decimal) -> int:
    return max(0, -amount.as_tuple().exponent)


@pytest.mark.parametrize(
    ("exact", "sent"),
    [("0.00382399", "0.003823"), ("0.000001", "0.000001"), ("0.0000009", "0.0"),
     ("12.5", "12.5"), ("0", "0.0"), ("1234.5678919", "1234.567891")],
)  # fmt: skip
def test_an_amount_is_sent_as_a_number_rounded_down_to_6_places(exact, sent):
    value = money_json(Decimal(exact))
    assert isinstance(value, float)
    assert Decimal(json.dumps(value)) == Decimal(sent)


@pytest.mark.parametrize(
    ("amount", "text", "digits"),
    [("5", "$5.00", "5"), ("5.00", "$5.00", "5"), ("0.015", "$0.015", "0.015"),
     ("0.0000001", "$0.0000001", "0.0000001"), ("1200", "$1200.00", "1200"),
     ("0.1250000", "$0.125", "0.125")],
)  # fmt: skip
def test_messages_show_cents_or_every_digit_when_a_cent_would_misstate(amount, text, digits):
    assert usd(Decimal(amount)) == text
    assert money_exact(Decimal(amount)) == digits


def test_event_data_sends_every_usd_field_as_money_and_the_rest_as_stored():
    data = {"cost_usd": "0.00012345678", "budget_usd": "2.5", "output": "0.123456789", "n": 3}
    assert money_fields_rendered(data) == {
        "cost_usd": 0.000123, "budget_usd": 2.5, "output": "0.123456789", "n": 3,
    }  # fmt: skip
    plain = {"text": "hi"}
    assert money_fields_rendered(plain) is plain


async def _replay(path: str, token: str) -> list[dict]:
    async with open_stream(path, token=token) as stream:
        messages, code = await stream.until_close()
    assert code == 1000
    return messages


def as_decimal(value) -> Decimal:
    """A JSON number as the exact text it was sent as."""
    assert isinstance(value, int | float | Decimal) and not isinstance(value, bool), value
    return Decimal(str(value))


@pytest.mark.usefixtures("executing")
def test_every_surface_sends_a_runs_cost_in_one_format(api_client, workspace, user):
    created = api_client.post(
        "/v1/swarms",
        {"template": "research-swarm-v1", "task": "Norwegian hydrogen economy"},
        format="json",
    )
    assert created.status_code == 201, created.content
    run_id = created.json()["swarm_id"]
    v1_status = wait_terminal(api_client, f"/v1/swarms/{run_id}")
    run = Run.objects.get(pk=run_id)
    assert run.status == "completed"
    exact = run.current_cost_usd
    assert places(exact.normalize()) > 6  # so rounding shows
    shown = money(exact)

    v1_result = decimal_json(api_client.get(f"/v1/swarms/{run_id}/result"))
    api_run = decimal_json(api_client.get(f"/api/runs/{run_id}"))
    api_events = decimal_json(api_client.get(f"/api/runs/{run_id}/events?limit=100"))["data"]
    streamed = async_to_sync(_replay)(f"/v1/swarms/{run_id}/stream", jwt_for(user))
    payload = json.loads(delivery._encode(delivery.run_payload(run)), parse_float=Decimal)
    board = json.loads(json.dumps(status_message(run)), parse_float=Decimal)

    totals = {
        "/v1 status current_cost_usd": v1_status["current_cost_usd"],
        "/v1 result total_usd": v1_result["cost_report"]["total_usd"],
        "/api run currentCostUsd": api_run["currentCostUsd"],
        "/api events run.completed": api_events[-1]["data"]["cost_usd"],
        "stream run.completed": streamed[-1]["data"]["cost_usd"],
        "workspace stream run.status": board["cost_usd"],
        "webhook cost_usd": payload["cost_usd"],
        "webhook current_cost_usd": payload["current_cost_usd"],
    }
    assert {name: as_decimal(value) for name, value in totals.items()} == dict.fromkeys(
        totals, shown
    )

    # Every amount on every surface, per agent and per event too: a number of at most 6 places.
    amounts = [
        *(agent["cost_usd"] for agent in v1_result["cost_report"]["agents"]),
        *(e["data"]["cost_usd"] for e in api_events if "cost_usd" in e["data"]),
        *(m["data"]["cost_usd"] for m in streamed if "cost_usd" in m["data"]),
    ]
    assert len(amounts) > 5
    assert all(is_json_number(a) or isinstance(a, float) for a in amounts), amounts
    assert all(places(as_decimal(a)) <= 6 for a in amounts), amounts
    # The stream and the events endpoint send each event's data alike, money included.
    listed = api_client.get(f"/api/runs/{run_id}/events?limit=100").json()["data"]
    assert [m["data"] for m in streamed] == [e["data"] for e in listed]


def test_the_schema_describes_every_money_field(api_client):
    schema = api_client.get("/openapi.json").json()
    money_fields = [
        (f"{component_name}.{name}", field)
        for component_name, component in schema["components"]["schemas"].items()
        if not component_name.endswith("Request")  # what is sent, not what is received
        for name, field in component.get("properties", {}).items()
        if name.endswith(("_usd", "Usd")) and field.get("type") == "number"
    ]
    assert len(money_fields) >= 10
    for name, field in money_fields:
        assert MONEY_DESCRIPTION in field.get("description", ""), name
    assert "rounded down to 6 decimal places" in schema["info"]["description"]
