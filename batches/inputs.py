"""A batch's inputs as sent: a JSON array (`"inputs"` of the body) or a JSONL upload (one input a
line), checked item by item with errors that name the item (`inputs[3]`) and, in an upload, its
line (`line 4`), so a caller can fix them all at once; and the parsers and renderer of the
JSONL media type (`application/x-ndjson`)."""

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from rest_framework.parsers import BaseParser
from rest_framework.renderers import BaseRenderer

from batches.services import BatchInput
from sverm.api.errors import InvalidRequest, PayloadTooLarge, field_error
from sverm.api.serializers import text_problem
from swarms.serializers import MAX_TASK_LENGTH

MAX_ITEMS = 1000
# An upload is held to the same 1 MiB as every request body (settings.DATA_UPLOAD_MAX_...).
MAX_UPLOAD_BYTES = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
MAX_CUSTOM_ID_LENGTH = 100
# The most problems one 400 lists (its message summarises the first few).
MAX_ERRORS = 20
NDJSON = "application/x-ndjson"
ITEM_KEYS = ("task", "customId")


@dataclass(frozen=True)
class JsonlBody:
    """An `application/x-ndjson` request body, as text (`inputs_from_jsonl` reads its lines)."""

    text: str

    def __str__(self) -> str:
        return self.text


class NdjsonParser(BaseParser):
    """`application/x-ndjson` (also `application/jsonl`): the body as text, at most
    MAX_UPLOAD_BYTES (413 above), UTF-8 (400 otherwise)."""

    media_type = NDJSON

    def parse(self, stream, media_type=None, parser_context=None) -> JsonlBody:
        raw = stream.read(MAX_UPLOAD_BYTES + 1) if stream is not None else b""
        if len(raw) > MAX_UPLOAD_BYTES:
            raise PayloadTooLarge(f"The upload is over {MAX_UPLOAD_BYTES} bytes.")
        return JsonlBody(decoded(raw))


class JsonlParser(NdjsonParser):
    media_type = "application/jsonl"


def decoded(raw: bytes) -> str:
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InvalidRequest(f"The upload is not UTF-8 text: {exc}.") from None


class NdjsonRenderer(BaseRenderer):
    """Declares that an action answers JSON lines (content negotiation lets `Accept:
    application/x-ndjson` through); the view streams the lines itself."""

    media_type = NDJSON
    format = "jsonl"
    charset = "utf-8"

    def render(self, data, accepted_media_type=None, renderer_context=None) -> bytes:
        if isinstance(data, bytes):
            return data
        return (json.dumps(data) + "\n").encode()


# ---------------------------------------------------------------------------------------------
# Checking the inputs
# ---------------------------------------------------------------------------------------------
class _Problems:
    def __init__(self) -> None:
        self.errors: list[dict[str, str]] = []

    def add(self, field: str, detail: str) -> None:
        if len(self.errors) < MAX_ERRORS:
            self.errors.append(field_error(field, detail))

    def raise_any(self, what: str) -> None:
        if self.errors:
            shown = "; ".join(f"{e['field']}: {e['detail']}" for e in self.errors[:5])
            more = len(self.errors) - 5
            tail = f" (and {more} more)" if more > 0 else ""
            raise InvalidRequest(f"{what}: {shown}{tail}.", field_errors=self.errors)


def _item(value: Any, field: str, problems: _Problems, prefix: str = "") -> BatchInput | None:
    """One input (a task, or an object with `task` and optionally `customId`), or None after
    adding what is wrong with it."""
    custom_id = ""
    if isinstance(value, dict):
        unknown = sorted(set(value) - set(ITEM_KEYS), key=str)
        if unknown:
            problems.add(field, f"{prefix}unknown field(s) {', '.join(map(repr, unknown))}; an "
                         f"input takes {' and '.join(ITEM_KEYS)}")  # fmt: skip
            return None
        if "customId" in value:
            custom_id = value["customId"]
            if (
                not isinstance(custom_id, str)
                or not custom_id.strip()
                or len(custom_id) > MAX_CUSTOM_ID_LENGTH
                or not custom_id.isprintable()
            ):
                problems.add(
                    f"{field}.customId",
                    f"{prefix}must be 1-{MAX_CUSTOM_ID_LENGTH} printable characters",
                )
                return None
        if "task" not in value:
            problems.add(f"{field}.task", f"{prefix}required")
            return None
        value, field = value["task"], f"{field}.task"
    if not isinstance(value, str):
        problems.add(field, f"{prefix}expected a task (a string) or an object with `task`")
        return None
    if not value.strip():
        problems.add(field, f"{prefix}the task is empty")
        return None
    if len(value) > MAX_TASK_LENGTH:
        problems.add(field, f"{prefix}longer than {MAX_TASK_LENGTH} characters")
        return None
    problem = text_problem(value) or (text_problem(custom_id) if custom_id else None)
    if problem:
        problems.add(field, f"{prefix}{problem}")
        return None
    return BatchInput(task=value, custom_id=custom_id)


def _checked(
    values: Iterable[tuple[Any, str, str]], problems: _Problems, what: str
) -> list[BatchInput]:
    """Inputs from (value, field, prefix) triples; 400 listing every problem found (the first
    MAX_ERRORS), duplicate custom ids included."""
    inputs, seen = [], {}
    for value, field, prefix in values:
        item = _item(value, field, problems, prefix)
        if item is None:
            continue
        if item.custom_id:
            if item.custom_id in seen:
                problems.add(
                    f"{field}.customId",
                    f"{prefix}{item.custom_id!r} is already the customId of {seen[item.custom_id]}",
                )
                continue
            seen[item.custom_id] = field
        inputs.append(item)
    problems.raise_any(what)
    return inputs


def _count_check(count: int, field: str) -> None:
    if count == 0:
        raise InvalidRequest.for_field(field, "At least one input is needed.")
    if count > MAX_ITEMS:
        raise InvalidRequest.for_field(
            field, f"At most {MAX_ITEMS} inputs in one batch; split it into several batches."
        )


def inputs_from_list(values: Any) -> list[BatchInput]:
    """The `inputs` of a JSON body: a list of tasks or `{"task", "customId"}` objects."""
    if not isinstance(values, list):
        raise InvalidRequest.for_field(
            "inputs", 'Expected a list of tasks, e.g. ["Summarise ...", {"task": "..."}].'
        )
    _count_check(len(values), "inputs")
    triples = ((value, f"inputs[{index}]", "") for index, value in enumerate(values))
    return _checked(triples, _Problems(), "Invalid inputs")


def inputs_from_jsonl(text: str, field: str = "inputs") -> list[BatchInput]:
    """The inputs of a JSONL upload: one JSON value a line (a task string or an object with
    `task`); blank lines are skipped. Errors name the line (from 1) and the item (from 0)."""
    problems = _Problems()
    values: list[tuple[Any, str, str]] = []
    for number, line in enumerate(text.split("\n"), 1):
        line = line.rstrip("\r")
        if not line.strip():
            continue
        where, prefix = f"{field}[{len(values)}]", f"line {number}: "
        try:
            value = json.loads(line)
        except ValueError as exc:
            problems.add(where, f"{prefix}not valid JSON ({exc})")
            value = _INVALID
        except RecursionError:
            problems.add(where, f"{prefix}nests too deeply")
            value = _INVALID
        values.append((value, where, prefix))
        if len(values) > MAX_ITEMS:
            break
    _count_check(len(values), field)
    return _checked(
        ((v, f, p) for v, f, p in values if v is not _INVALID), problems, "Invalid upload"
    )


_INVALID = object()
