"""Every API operation, written once as a flow (see _core): what it sends, how it reads the answer.
Client and AsyncClient run these; nothing here does I/O."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import quote

from ._core import (
    Call,
    ConnectionFailed,
    Core,
    Flow,
    Item,
    Sleep,
    WsClose,
    WsClosed,
    WsReceive,
    WsRefused,
    backoff,
    camel,
    collect,
    decode,
    drop_none,
    json_dumps,
    json_loads,
    new_idempotency_key,
    pages,
    to_decimal,
)
from .errors import (
    SvermError,
    TransportError,
    WaitTimeout,
    error_from_close,
    error_from_response,
    retry_after_seconds,
)
from .models import (
    Event,
    Run,
    RunCreated,
    RunResult,
    Swarm,
    SwarmVersion,
    Template,
    Usage,
    Workspace,
)

MAX_PAGE_SIZE = 100
# The longest a single GET /api/runs/{id}/wait may block (the server's SVERM_WAIT_MAX_SECONDS).
MAX_WAIT_POLL = 300.0
# How much longer than the server's wait the client's read timeout is.
WAIT_READ_MARGIN = 15.0
# Consecutive failed (re)connections of a stream before it gives up: backoff 0.5 s, 1, 2, 4, 8,
# so a server restart of ~15 s is ridden out.
STREAM_MAX_RECONNECTS = 5
# Close codes of a stream the server refused: not retried.
STREAM_REFUSALS = frozenset({4400, 4401, 4403, 4404})
# Handshake statuses worth another try.
STREAM_RETRY_STATUSES = frozenset({429, 502, 503, 504})


def _id(value: str) -> str:
    """An id as one path segment (never a path of its own)."""
    if not isinstance(value, str) or not value:
        raise ValueError(f"an id must be a non-empty string, not {value!r}")
    return quote(value, safe="")


def _page_size(value: int) -> int:
    if not 1 <= value <= MAX_PAGE_SIZE:
        raise ValueError(f"page_size must be from 1 to {MAX_PAGE_SIZE}, not {value!r}")
    return value


def _params(values: Mapping[str, Any]) -> dict[str, Any]:
    """Keyword arguments as query parameters: `from_` -> `from`, None dropped."""
    return {key.rstrip("_"): value for key, value in values.items() if value is not None}


def _body(values: Mapping[str, Any]) -> dict[str, Any]:
    """Keyword arguments as an /api body: camelCase keys, None dropped."""
    return {camel(key): value for key, value in values.items() if value is not None}


# --- templates -----------------------------------------------------------------------------------
def template_list(core: Core) -> Flow[list[Template]]:
    response = yield from core.request(Call("GET", "/v1/templates"))
    rows = response.body.get("templates") if isinstance(response.body, Mapping) else None
    return [Template.from_wire(row) for row in rows or []]


def template_get(core: Core, template_id: str) -> Flow[str]:
    accept = {"Accept": "application/yaml, text/yaml;q=0.9, text/plain;q=0.8, */*;q=0.1"}
    response = yield from core.request(
        Call("GET", f"/v1/templates/{_id(template_id)}", headers=accept)
    )
    body = response.body
    return body if isinstance(body, str) else json_dumps(body)


# --- runs ----------------------------------------------------------------------------------------
def definition_text(definition: Mapping[str, Any] | str) -> str:
    """A definition for /v1's `template` field: YAML or JSON text as given; a dict as JSON (which
    YAML reads)."""
    if isinstance(definition, str):
        if not definition.strip():
            raise ValueError("the definition is empty")
        return definition
    if isinstance(definition, Mapping):
        return json_dumps(definition)
    raise TypeError(f"a definition must be a dict or YAML/JSON text, not {type(definition)}")


def run_create(
    core: Core,
    task: str,
    *,
    template: str | None,
    definition: Mapping[str, Any] | str | None,
    max_budget_usd: Any,
    idempotency_key: str | None,
    extra: Mapping[str, Any],
) -> Flow[RunCreated]:
    """POST /v1/swarms. Always with an Idempotency-Key, so retrying it (a dropped connection, a
    502) never starts a second run: the server answers the retry with the first response."""
    if (template is None) == (definition is None):
        raise ValueError("pass exactly one of template= (a template id) and definition=")
    body: dict[str, Any] = {
        "template": template if template is not None else definition_text(definition or ""),
        "task": task,
        **drop_none(extra),
    }
    if max_budget_usd is not None:
        body["max_budget_usd"] = to_decimal(max_budget_usd)
    key = idempotency_key or new_idempotency_key()
    response = yield from core.request(
        Call("POST", "/v1/swarms", body=body, headers={"Idempotency-Key": key}, idempotent=True)
    )
    replayed = response.headers.get("idempotent-replayed", "").lower() == "true"
    return RunCreated.from_wire(response.body, replayed=replayed)


def run_get(core: Core, run_id: str) -> Flow[Run]:
    response = yield from core.request(Call("GET", f"/api/runs/{_id(run_id)}"))
    return Run.from_wire(response.body)


def run_list(
    core: Core,
    *,
    status: str | None,
    limit: int | None,
    filter: Any,
    order_by: Any,
    page_size: int,
    params: Mapping[str, Any],
) -> Flow[None]:
    """The runs, keyset page after page (arguments checked now, not at the first row)."""
    query = _params({**params, "status": status, "filter": filter, "orderBy": order_by})
    query["limit"] = _page_size(page_size)
    return pages(core, Call("GET", "/api/runs", params=query), Run.from_wire, limit=limit)


def run_result(core: Core, run_id: str) -> Flow[RunResult]:
    response = yield from core.request(Call("GET", f"/v1/swarms/{_id(run_id)}/result"))
    return RunResult.from_wire(response.body)


def run_cancel(core: Core, run_id: str) -> Flow[Run]:
    response = yield from core.request(Call("POST", f"/api/runs/{_id(run_id)}/cancel"))
    return Run.from_wire(response.body)


def run_events(core: Core, run_id: str, *, after: int, page_size: int) -> Flow[None]:
    query = {"after": _after(after), "limit": _page_size(page_size)}
    return pages(
        core, Call("GET", f"/api/runs/{_id(run_id)}/events", params=query), Event.from_wire
    )


def _after(value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"after must be a seq, an int of 0 or more, not {value!r}")
    return value


def run_wait(
    core: Core,
    run_id: str,
    *,
    timeout: float | None,
    poll: float,
    clock: Callable[[], float] = time.monotonic,
) -> Flow[Run]:
    """GET /api/runs/{id}/wait again and again (each blocking up to `poll` seconds on the server)
    until the run has finished or waits for an operator; WaitTimeout once `timeout` has passed."""
    if not 0 < poll <= MAX_WAIT_POLL:
        raise ValueError(f"poll must be more than 0 and at most {MAX_WAIT_POLL:g} seconds")
    if timeout is not None and timeout < 0:
        raise ValueError("timeout must be 0 or more (or None: no limit)")
    deadline = None if timeout is None else clock() + timeout
    path = f"/api/runs/{_id(run_id)}/wait"
    while True:
        wait_for = poll if deadline is None else max(min(poll, deadline - clock()), 0.0)
        started = clock()
        response = yield from core.request(
            Call(
                "GET",
                path,
                params={"timeout": f"{wait_for:.3f}"},
                timeout=wait_for + WAIT_READ_MARGIN,
            )
        )
        run = Run.from_wire(response.body)
        if run.finished or run.paused:
            return run
        if deadline is not None and clock() >= deadline:
            raise WaitTimeout(
                f"run {run_id} is still {run.status} after {timeout:g} s", run=run, timeout=timeout
            )
        if wait_for >= 1 and clock() - started < 0.5:
            # The server answered at once with an unfinished run (it does not hold waits):
            # poll gently rather than in a tight loop.
            yield Sleep(1.0)


def run_stream(
    core: Core, run_id: str, *, after: int, position: StreamPosition, max_reconnects: int
) -> Flow[None]:
    """A run's events from its WebSocket, as Items, until the terminal event. A dropped
    connection is reopened with `after=<last seq seen>`, and any event at or below it dropped:
    no gap, no duplicate. Refusals (4400/4401/4403/4404) raise; a 4401 refreshes a JWT once."""
    position.last_seq = _after(after)
    if max_reconnects < 0:
        raise ValueError("max_reconnects must be 0 or more")
    return _stream(core, run_id, f"/api/runs/{_id(run_id)}/stream", position, max_reconnects)


def _stream(
    core: Core, run_id: str, path: str, position: StreamPosition, max_reconnects: int
) -> Flow[None]:
    failures = 0
    refreshed = False
    while True:
        yield from core.ensure_access()
        delay: float | None = None
        try:
            yield core.ws_target(path, {"after": position.last_seq})
            while True:
                event = _stream_event((yield WsReceive()))
                if event.seq <= position.last_seq:
                    continue  # sent again after a reconnect: already delivered
                position.last_seq = event.seq
                failures = 0
                yield Item(event)
                if event.terminal:
                    yield WsClose()
                    return
        except WsClosed as closed:
            if closed.code == 1000:
                return  # the server is done (the run had ended before `after`)
            if closed.code in STREAM_REFUSALS:
                if closed.code == 4401 and core.can_refresh and not refreshed:
                    refreshed = True
                    yield from core.refresh()
                    continue
                raise error_from_close(closed.code, closed.reason) from None
            cause: BaseException = closed
        except WsRefused as refused:
            reply = refused.reply
            if reply.status not in STREAM_RETRY_STATUSES:
                raise error_from_response(
                    reply.status, reply.headers, decode(reply), reason=reply.reason
                ) from None
            delay = retry_after_seconds(reply.headers)
            cause = refused
        except ConnectionFailed as failure:
            cause = failure.error
        failures += 1
        if failures > max_reconnects:
            raise TransportError(
                f"the stream of {run_id} was lost and could not be reopened "
                f"({failures - 1} reconnections): {cause}",
                code="stream_lost",
            ) from cause
        yield Sleep(backoff(failures - 1) if delay is None else min(delay, 60.0))


class StreamPosition:
    """Where a stream stands: the seq of the last event it delivered."""

    __slots__ = ("last_seq",)

    def __init__(self) -> None:
        self.last_seq = 0


def _stream_event(message: str | bytes) -> Event:
    try:
        data = json_loads(message)
        return Event.from_wire(data)
    except (ValueError, KeyError, TypeError) as error:
        raise SvermError(f"unreadable stream message: {message[:200]!r}") from error


# --- usage ---------------------------------------------------------------------------------------
def usage_get(core: Core, month: str | None) -> Flow[Usage]:
    response = yield from core.request(Call("GET", "/v1/usage", params=_params({"month": month})))
    return Usage.from_wire(response.body)


def usage_report(core: Core, params: Mapping[str, Any]) -> Flow[dict[str, Any]]:
    response = yield from core.request(Call("GET", "/api/usage", params=_params(params)))
    return dict(response.body) if isinstance(response.body, Mapping) else {}


# --- swarms --------------------------------------------------------------------------------------
def swarm_list(
    core: Core, *, limit: int | None, page_size: int, params: Mapping[str, Any]
) -> Flow[None]:
    query = _params(params)
    if "order_by" in query:
        query["orderBy"] = query.pop("order_by")
    query["limit"] = _page_size(page_size)
    return pages(core, Call("GET", "/api/swarms", params=query), Swarm.from_wire, limit=limit)


def swarm_get(core: Core, swarm_id: str) -> Flow[Swarm]:
    response = yield from core.request(Call("GET", f"/api/swarms/{_id(swarm_id)}"))
    return Swarm.from_wire(response.body)


def swarm_create(
    core: Core, *, workspace_id: str, name: str, fields: Mapping[str, Any]
) -> Flow[Swarm]:
    body = {"workspaceId": workspace_id, "name": name, **_body(fields)}
    response = yield from core.request(Call("POST", "/api/swarms", body=body))
    return Swarm.from_wire(response.body)


def swarm_delete(core: Core, swarm_id: str) -> Flow[Swarm]:
    """DELETE (to the trash), then the swarm as it now is (readable by id while in the trash)."""
    yield from core.request(Call("DELETE", f"/api/swarms/{_id(swarm_id)}"))
    return (yield from swarm_get(core, swarm_id))


def swarm_restore(core: Core, swarm_id: str) -> Flow[Swarm]:
    response = yield from core.request(
        Call("POST", f"/api/swarms/{_id(swarm_id)}/restore", idempotent=True)
    )
    return Swarm.from_wire(response.body)


def swarm_run(
    core: Core,
    swarm_id: str,
    task: str,
    *,
    max_budget_usd: Any,
    idempotency_key: str | None,
    extra: Mapping[str, Any],
) -> Flow[Run]:
    """POST /api/swarms/{id}/runs, with an Idempotency-Key like every run creation."""
    body: dict[str, Any] = {"task": task, **_body(extra)}
    if max_budget_usd is not None:
        body["maxBudgetUsd"] = to_decimal(max_budget_usd)
    key = idempotency_key or new_idempotency_key()
    response = yield from core.request(
        Call(
            "POST",
            f"/api/swarms/{_id(swarm_id)}/runs",
            body=body,
            headers={"Idempotency-Key": key},
            idempotent=True,
        )
    )
    return Run.from_wire(response.body)


def swarm_versions(core: Core, swarm_id: str, *, page_size: int) -> Flow[None]:
    path = f"/api/swarms/{_id(swarm_id)}/versions"
    call = Call("GET", path, params={"limit": _page_size(page_size)})
    return pages(core, call, SwarmVersion.from_wire)


# --- workspaces ----------------------------------------------------------------------------------
def workspace_list(core: Core) -> Flow[list[Workspace]]:
    call = Call("GET", "/api/workspaces", params={"limit": MAX_PAGE_SIZE})
    return (yield from collect(pages(core, call, Workspace.from_wire)))
