"""Writes for templates: parsing and validating definitions, create/update/delete, the built-ins.

A template's source is YAML (or, from JSON clients, a dict of the same shape). Its top-level
`name` and `description` keys are template metadata, not part of the definition: they are stripped
before validation, kept in the stored YAML, and must agree with the template's own name and
description (which default to them), so the YAML served by `/v1/templates/{id}` never contradicts
the listing.
"""

import functools
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from pathlib import Path
from typing import Any

import yaml
from django.db import DEFAULT_DB_ALIAS, IntegrityError, transaction
from django.db.models import ProtectedError, RestrictedError

from accounts.models import User, Workspace
from audit.services import audit_diff, audit_fields, audit_record
from sverm.api.errors import Conflict, Forbidden, InvalidRequest
from sverm.api.serializers import text_problem
from sverm.services import model_update
from swarms.engine import Definition, Price, estimate_cost, validate_definition
from swarms.providers import price_map
from templates_app.models import TEMPLATE_ID_HELP, TEMPLATE_ID_PATTERN, SwarmTemplate

logger = logging.getLogger(__name__)

BUILTIN_DIR = Path(__file__).resolve().parent / "builtin"
MAX_SOURCE_BYTES = 64 * 1024
METADATA_KEYS = ("name", "description")
MAX_NAME_CHARS = 200
MAX_DESCRIPTION_CHARS = 10_000
# Errors listed in a message; field_errors carry them all (validation bounds how many there are).
MAX_LISTED_ERRORS = 20
# estimated_cost_range prices a typical task; the estimate depends on the task's length only.
TYPICAL_TASK = "x" * 300
# Below a cent the range gets more decimals, up to this many.
MAX_USD_PLACES = 6

_UNKNOWN_FIELD = ": unknown field"
_AGENT_KEY = re.compile(r"(agents)\[(\d+)\]\.(.*)", re.DOTALL)


# ---------------------------------------------------------------------------------------------
# Parsing and validation
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ParsedSource:
    definition: dict[str, Any]  # validated, without the metadata keys
    yaml: str
    metadata: dict[str, str]  # the `name` / `description` the source carries


def _field_error(field: str, segments: list[str], detail: str, code: str = "invalid") -> dict:
    escaped = [s.replace("~", "~0").replace("/", "~1") for s in segments]
    return {"field": field, "pointer": "#/" + "/".join(escaped), "detail": detail, "code": code}


def _invalid(field_errors: list[dict], summary: str) -> InvalidRequest:
    listed = [f"{e['field']}: {e['detail']}" for e in field_errors[:MAX_LISTED_ERRORS]]
    more = len(field_errors) - len(listed)
    message = f"{summary}: " + "; ".join(listed) + (f"; and {more} more." if more else ".")
    return InvalidRequest(message, field_errors=field_errors)


def _definition_error(error: str) -> dict:
    """A `validate_definition` message (`agents[2].model: unknown model 'x'`) as a field error
    rooted at `definition`."""
    if error.endswith(_UNKNOWN_FIELD):
        # The key is the user's and may contain anything, so split off the known prefix only.
        path, detail, code = error[: -len(_UNKNOWN_FIELD)], "unknown field", "unknown_field"
        agent_key = _AGENT_KEY.fullmatch(path)
        if agent_key:
            segments = [agent_key[1], agent_key[2], agent_key[3]]
        elif path.startswith("limits."):
            segments = ["limits", path.removeprefix("limits.")]
        else:
            segments = [path]
    else:
        path, _, detail = error.partition(": ")
        code = "required" if detail == "required" else "invalid"
        segments = [] if path == "definition" else re.findall(r"[^.\[\]]+", path)
    field = "definition" if path == "definition" else f"definition.{path}"
    return _field_error(field, ["definition", *segments], detail, code)


def _text_errors(value: Any, segments: list[str]) -> list[dict]:
    """Strings the databases cannot store (NUL, lone surrogates), anywhere in a (valid, hence
    shallow) definition."""
    if isinstance(value, str):
        problem = text_problem(value)
        if problem is None:
            return []
        field = "definition" + "".join(
            f"[{s}]" if isinstance(s, int) else f".{s}" for s in segments
        )
        return [_field_error(field, ["definition", *map(str, segments)], problem)]
    if isinstance(value, Mapping):
        return [e for key, item in value.items() for e in _text_errors(item, [*segments, key])]
    if isinstance(value, list):
        return [e for i, item in enumerate(value) for e in _text_errors(item, [*segments, i])]
    return []


# libyaml's parser (PyYAML's C extension, when built with it) with PyYAML's safe constructor:
# the same values as `yaml.safe_load`, parsed about ten times faster (a definition is parsed on
# every run created from YAML). Its errors are worded differently, so a document it refuses is
# parsed again by `yaml.safe_load`, whose error is the one reported.
_FAST_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _yaml_fast(text: str) -> Any:
    return yaml.load(text, Loader=_FAST_LOADER)  # noqa: S506 (a safe loader)


def _load_yaml(text: str) -> Any:
    def refuse(detail: str) -> InvalidRequest:
        return InvalidRequest(
            f"Invalid YAML: {detail}.", field_errors=[_field_error("yaml", ["yaml"], detail)]
        )

    size = len(text.encode("utf-8", "surrogatepass"))
    if size > MAX_SOURCE_BYTES:
        raise refuse(f"is {size} bytes; the limit is {MAX_SOURCE_BYTES} (64 KiB)")
    problem = text_problem(text)
    if problem:
        raise refuse(problem)
    try:
        return _yaml_fast(text)
    except (yaml.YAMLError, RecursionError):
        pass  # said again by PyYAML's own parser, whose messages name what is wrong and where
    try:
        return yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        raise refuse(f"{where}{exc.problem or exc.context or 'not valid YAML'}") from None
    except yaml.reader.ReaderError as exc:
        line = text[: exc.position].count("\n") + 1
        column = exc.position - (text.rfind("\n", 0, exc.position) + 1) + 1
        detail = f"line {line}, column {column}: {exc.reason} (#x{exc.character:04x})"
        raise refuse(detail) from None
    except yaml.YAMLError as exc:
        raise refuse(str(exc)) from None
    except RecursionError:
        raise refuse("nests too deeply") from None


def _metadata(data: Mapping) -> tuple[dict[str, str], list[dict]]:
    metadata, errors = {}, []
    limits = {"name": MAX_NAME_CHARS, "description": MAX_DESCRIPTION_CHARS}
    for key in METADATA_KEYS:
        if key not in data:
            continue
        value = data[key]
        field = f"definition.{key}"
        if not isinstance(value, str) or (key == "name" and not value.strip()):
            errors.append(_field_error(field, ["definition", key], "must be a non-empty string"
                                       if key == "name" else "must be a string"))  # fmt: skip
        elif len(value) > limits[key]:
            errors.append(_field_error(field, ["definition", key],
                                       f"must be at most {limits[key]} characters"))  # fmt: skip
        elif text_problem(value):
            errors.append(_field_error(field, ["definition", key], text_problem(value)))
        else:
            metadata[key] = value
    return metadata, errors


_ANY_MODEL = object()


def _source_parse(source: str | Mapping, *, known_models: Any = _ANY_MODEL) -> ParsedSource:
    """Parse and validate; `known_models` defaults to the models that have a price."""
    if isinstance(source, str):
        data = _load_yaml(source)
    elif isinstance(source, Mapping):
        data = source
    else:
        raise TypeError("source must be YAML text or a mapping")
    if not isinstance(data, Mapping):
        kind = "nothing" if data is None else f"a {type(data).__name__}"
        detail = f"must be a mapping (topology, agents, ...), not {kind}"
        raise _invalid([_field_error("definition", ["definition"], detail)], "Invalid definition")
    metadata, errors = _metadata(data)
    definition = {key: value for key, value in data.items() if key not in METADATA_KEYS}
    if known_models is _ANY_MODEL:
        known_models = set(price_map())
    errors += [_definition_error(e) for e in validate_definition(definition, known_models)]
    if not errors:
        errors = _text_errors(definition, [])
    if errors:
        raise _invalid(errors, "Invalid definition")
    if isinstance(source, str):
        text = source
    else:
        text = yaml.safe_dump(dict(data), sort_keys=False, allow_unicode=True)
        if len(text.encode("utf-8")) > MAX_SOURCE_BYTES:
            detail = f"is larger than {MAX_SOURCE_BYTES} bytes (64 KiB) as YAML"
            raise _invalid([_field_error("definition", ["definition"], detail)],
                           "Invalid definition")  # fmt: skip
    return ParsedSource(definition=definition, yaml=text, metadata=metadata)


def definition_parse(*, source: str | dict, prices: Mapping | None = None) -> tuple[dict, str]:
    """YAML text or a dict -> (validated definition dict, YAML text).

    Raises InvalidRequest listing every problem, each also in `field_errors` with its path
    (`definition.agents[2].model`, pointer `#/definition/agents/2/model`); YAML syntax errors name
    line and column. Top-level `name` and `description` are metadata: accepted, not in the result.
    `prices` (`price_map()`'s, when the caller has read them) saves reading the priced models.
    """
    parsed = _source_parse(source, **({} if prices is None else {"known_models": set(prices)}))
    return parsed.definition, parsed.yaml


def template_source_check(
    *, source: str | dict, name: str | None, description: str | None
) -> ParsedSource:
    """Parse and validate a template's source, and check that its metadata agrees with the
    template's `name` and `description` (None: not checked). For forms that save themselves."""
    parsed = _source_parse(source)
    _check_metadata(parsed.metadata, name=name, description=description)
    return parsed


def _check_metadata(
    metadata: Mapping[str, str], *, name: str | None, description: str | None
) -> None:
    errors = []
    for key, value in (("name", name), ("description", description)):
        if value is not None and key in metadata and metadata[key] != value:
            errors.append(_field_error(
                f"definition.{key}", ["definition", key],
                f"the definition's {key} {_clip(metadata[key])} differs from the template's "
                f"{_clip(value)}; make them equal, or drop `{key}` from the definition",
            ))  # fmt: skip
    if errors:
        raise _invalid(errors, "Conflicting template metadata")


def _clip(text: str, limit: int = 60) -> str:
    return repr(text if len(text) <= limit else text[: limit - 1] + "…")


def _stored_metadata(template: SwarmTemplate) -> dict[str, str]:
    data = yaml.safe_load(template.yaml)  # validated when written
    return {key: data[key] for key in METADATA_KEYS if isinstance(data.get(key), str)}


# ---------------------------------------------------------------------------------------------
# Workspace templates
# ---------------------------------------------------------------------------------------------
@functools.cache
def builtin_sources() -> dict[str, str]:
    """Built-in template id -> its YAML, from `templates_app/builtin/<id>.yaml`."""
    return {path.stem: path.read_text("utf-8") for path in sorted(BUILTIN_DIR.glob("*.yaml"))}


def _ensure_writable(template: SwarmTemplate) -> None:
    if template.built_in:
        raise Forbidden(f"Template {template.pk} is built in and read-only; copy it instead.")


def _check_id(template_id: str) -> None:
    if not re.fullmatch(TEMPLATE_ID_PATTERN, template_id):
        detail = f"must be {TEMPLATE_ID_HELP}"
        raise InvalidRequest.for_field("id", detail)


def _taken(template_id: str) -> Conflict:
    return Conflict(f"Template id {template_id!r} is already taken; choose another.")


def template_create(
    *,
    workspace: Workspace,
    template_id: str,
    source: str | dict,
    created_by: User | None,
    name: str | None = None,
    description: str | None = None,
) -> SwarmTemplate:
    """A workspace template. `name` and `description` default to the source's metadata; `name`
    is required when the source has none. 409 when the id is taken (ids are global)."""
    _check_id(template_id)
    parsed = _source_parse(source)
    name = parsed.metadata.get("name") if name is None else name
    if name is None:
        raise InvalidRequest.for_field(
            "name",
            "This field is required.",
            code="required",
            message="name: required (or give the definition a top-level `name`).",
        )
    description = parsed.metadata.get("description", "") if description is None else description
    _check_metadata(parsed.metadata, name=name, description=description)
    if template_id in builtin_sources() or SwarmTemplate.objects.filter(pk=template_id).exists():
        raise _taken(template_id)
    try:
        with transaction.atomic():
            template = SwarmTemplate.objects.create(
                id=template_id,
                workspace=workspace,
                name=name,
                description=description,
                topology=parsed.definition["topology"],
                definition=parsed.definition,
                yaml=parsed.yaml,
                created_by=created_by,
            )
            _template_audit("template.create", template,
                            after=audit_fields(template, TEMPLATE_AUDITED))  # fmt: skip
            return template
    except IntegrityError:  # created concurrently
        raise _taken(template_id) from None


# A template's fields its audit events show (the YAML holds the definition).
TEMPLATE_AUDITED = ("name", "description", "topology", "yaml")


def _template_audit(action: str, template: SwarmTemplate, *, before=None, after=None) -> None:
    audit_record(action=action, workspace_id=template.workspace_id, target_type="template",
                 target_id=template.pk, before=before, after=after)  # fmt: skip


@transaction.atomic
def template_update(*, template: SwarmTemplate, data: dict) -> SwarmTemplate:
    """`data` keys: name, description, source (YAML text or a definition dict). Omitted name and
    description follow a new source's metadata; they must agree with the YAML's metadata."""
    _ensure_writable(template)
    template = SwarmTemplate.objects.select_for_update().get(pk=template.pk)
    changes: dict[str, Any] = {}
    if "source" in data:
        parsed = _source_parse(data["source"])
        metadata = parsed.metadata
        changes.update(
            topology=parsed.definition["topology"], definition=parsed.definition, yaml=parsed.yaml
        )
        changes.update({key: metadata[key] for key in METADATA_KEYS if key in metadata})
    else:
        metadata = _stored_metadata(template)
    changes.update({key: data[key] for key in METADATA_KEYS if key in data})
    _check_metadata(
        metadata,
        name=changes.get("name", template.name),
        description=changes.get("description", template.description),
    )
    before = audit_fields(template, TEMPLATE_AUDITED)
    template, changed = model_update(instance=template, data=changes)
    if changed:
        old, new = audit_diff(before, audit_fields(template, TEMPLATE_AUDITED))
        if new:
            _template_audit("template.update", template, before=old, after=new)
    return template


def template_delete(*, template: SwarmTemplate) -> None:
    _ensure_writable(template)
    try:
        with transaction.atomic():
            _template_audit("template.delete", template,
                            before=audit_fields(template, TEMPLATE_AUDITED))  # fmt: skip
            template.delete()
    except (ProtectedError, RestrictedError):
        raise Conflict(f"Template {template.pk} is still in use and cannot be deleted.") from None


# ---------------------------------------------------------------------------------------------
# Built-ins
# ---------------------------------------------------------------------------------------------
def templates_sync_builtins(*, using: str = DEFAULT_DB_ALIAS) -> list[str]:
    """Install or refresh every built-in from its YAML file; returns the ids written (none when
    all are current). Idempotent; run after every `migrate`. A workspace template that already
    holds a new built-in's id keeps it (the built-in is skipped, with a warning)."""
    written = []
    manager = SwarmTemplate.objects.db_manager(using)
    with transaction.atomic(using=using):
        for template_id, text in builtin_sources().items():
            try:
                # Structure only: an operator may have removed a price since; runs refuse then.
                parsed = _source_parse(text, known_models=None)
            except InvalidRequest as exc:
                raise ValueError(f"built-in template {template_id}: {exc.message}") from None
            if "name" not in parsed.metadata:
                raise ValueError(f"built-in template {template_id}: needs a top-level `name`")
            values = {
                "name": parsed.metadata["name"],
                "description": parsed.metadata.get("description", ""),
                "topology": parsed.definition["topology"],
                "definition": parsed.definition,
                "yaml": parsed.yaml,
            }
            existing = manager.select_for_update().filter(pk=template_id).first()
            if existing is None:
                manager.create(id=template_id, workspace=None, **values)
            elif existing.workspace_id is not None:
                logger.warning(
                    "Built-in template %s not installed: workspace %s has a template with that id.",
                    template_id,
                    existing.workspace_id,
                )
                continue
            elif any(getattr(existing, key) != value for key, value in values.items()):
                for key, value in values.items():
                    setattr(existing, key, value)
                existing.save(using=using, update_fields=[*values, "updated_at"])
            else:
                continue
            written.append(template_id)
    return written


# ---------------------------------------------------------------------------------------------
# Cost range
# ---------------------------------------------------------------------------------------------
def estimated_cost_range(
    definition: Mapping[str, Any], *, prices: Mapping[str, Price] | None = None
) -> str:
    """`"$0.05 - $0.50"`: expected and worst cost of a typical (~300-character) task, at today's
    prices (`prices` saves the lookup when rendering many). Two decimals, the lower bound rounded
    down and the upper up; more decimals when the lower bound is below a cent, so a paid model
    never shows `$0.00 - $0.00`. `"unknown"` when a model it uses has no price."""
    prices = price_map() if prices is None else prices
    try:
        expected, worst = estimate_cost(Definition.from_dict(definition), TYPICAL_TASK, prices)
    except ValueError:
        return "unknown"
    return usd_range(expected, worst)


def usd_range(low: Decimal, high: Decimal) -> str:
    high = max(low, high)
    places = 2
    # The lower bound rounds down and the upper up, so the range always holds the estimate
    # a run of a typical task is created with.
    while places < MAX_USD_PLACES and low > 0 and _round(low, places, ROUND_FLOOR) == 0:
        places += 1
    return f"${_round(low, places, ROUND_FLOOR)} - ${_round(high, places, ROUND_CEILING)}"


def _round(amount: Decimal, places: int, rounding: str) -> Decimal:
    return amount.quantize(Decimal(1).scaleb(-places), rounding=rounding)
