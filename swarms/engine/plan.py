"""Reading a manager's plan: the subtasks, from whatever shape the model actually answered in.

Models asked for "a JSON array" still wrap it in fences, add prose, return an object, or fall back
to a numbered list; a lenient reader here is cheaper than a retry call.
"""

import json
import re
from typing import Any

MAX_SUBTASK_CHARS = 500
_LIST_KEYS = ("subtasks", "tasks", "plan", "steps")
_TEXT_KEYS = ("task", "description", "title", "subtask", "name")
_FENCE = re.compile(r"```[\w-]*[ \t]*\n(.*?)```", re.S)
_LIST_LINE = re.compile(r"^\s*(?:[-*+•]|\d{1,3}[.)]|\(\d{1,3}\))\s+(?P<item>\S.*)$")
_MAX_SCAN = 200  # bracket positions tried when JSON hides inside prose


def parse_plan(text: str, max_items: int) -> list[str]:
    """Subtasks found in `text`: stripped, deduplicated, each at most 500 characters, at most
    `max_items` of them; [] when nothing usable (the caller then gives everyone the whole task)."""
    if max_items <= 0 or not text or not text.strip():
        return []
    items = _from_json(text) or _from_list_lines(text)
    return _clean(items, max_items)


def _from_json(text: str) -> list[str]:
    for value in _json_candidates(text):
        items = _items(value)
        if items:
            return items
    return []


def _json_candidates(text: str):
    """Decoded JSON values, most likely plan first: fenced blocks, the whole text, then the
    first parseable array or object embedded in prose."""
    for block in _FENCE.findall(text):
        if (value := _loads(block)) is not None:
            yield value
    if (value := _loads(text)) is not None:
        yield value
    decoder = json.JSONDecoder()
    starts = [match.start() for match in re.finditer(r"[\[{]", text)][:_MAX_SCAN]
    for start in starts:
        try:
            value, _ = decoder.raw_decode(text, start)
        except ValueError:
            continue
        yield value


def _loads(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return None


def _items(value: Any, depth: int = 0) -> list[str]:
    if isinstance(value, list):
        return [text for item in value if (text := _item_text(item))]
    if isinstance(value, dict) and depth < 2:
        lowered = {str(key).lower(): item for key, item in value.items()}
        for key in _LIST_KEYS:
            if key in lowered and (items := _items(lowered[key], depth + 1)):
                return items
    return []


def _item_text(item: Any) -> str:
    if isinstance(item, str):
        return item
    if isinstance(item, dict):
        lowered = {str(key).lower(): value for key, value in item.items()}
        for key in _TEXT_KEYS:
            if isinstance(lowered.get(key), str) and lowered[key].strip():
                return lowered[key]
    return ""


def _from_list_lines(text: str) -> list[str]:
    return [match["item"] for line in text.splitlines() if (match := _LIST_LINE.match(line))]


def _clean(items: list[str], max_items: int) -> list[str]:
    cleaned: list[str] = []
    seen: set[str] = set()
    for item in items:
        text = " ".join(item.replace("**", "").split())[:MAX_SUBTASK_CHARS].strip()
        key = text.casefold()
        if text and key not in seen:
            seen.add(key)
            cleaned.append(text)
            if len(cleaned) == max_items:
                break
    return cleaned
