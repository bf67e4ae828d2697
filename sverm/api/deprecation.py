"""Deprecating an operation: one decorator, and every response of that operation (successes and
errors alike) says so, as does the OpenAPI schema.

    @deprecated(since=date(2027, 1, 4), sunset=date(2027, 7, 5), successor="/api/things")
    def list(self, request): ...

puts on each response, by RequestIdMiddleware (the one place headers are added to every
response):

- `Deprecation: @<unix time of since>` (RFC 9745: a structured-field date, when it took effect);
- `Sunset: <HTTP-date of sunset>` (RFC 8594: when it stops answering; seed 000 promises at least
  six months' notice, which `deprecated` enforces);
- `Link: <successor>; rel="successor-version"` when there is one, and `<docs>; rel="deprecation"`
  (RFC 9745) pointing at the operation's documentation.

The schema marks the operation `deprecated: true` and declares the two headers on its responses
(sverm/api/schema.py). The decorator goes on a view's handler (`get`, `list`, a viewset action)
or on a view class (every operation of it).
"""

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from email.utils import format_datetime
from typing import Any

# Seed 000: "removed after at least 6 months' notice".
MIN_NOTICE_DAYS = 182
DEPRECATION_ATTR = "sverm_deprecation"


@dataclass(frozen=True)
class Deprecation:
    since: date
    sunset: date
    successor: str | None = None
    docs: str = "/docs"

    def headers(self) -> dict[str, str]:
        since = datetime.combine(self.since, time.min, tzinfo=UTC)
        sunset = datetime.combine(self.sunset, time.min, tzinfo=UTC)
        links = [f'<{self.docs}>; rel="deprecation"']
        if self.successor:
            links.insert(0, f'<{self.successor}>; rel="successor-version"')
        return {
            "Deprecation": f"@{int(since.timestamp())}",
            "Sunset": format_datetime(sunset, usegmt=True),
            "Link": ", ".join(links),
        }

    def note(self) -> str:
        """What the schema's description of the operation says."""
        text = f"**Deprecated** since {self.since.isoformat()}; it stops answering on " \
            f"{self.sunset.isoformat()} (`Sunset` header)."  # fmt: skip
        if self.successor:
            text += f" Use `{self.successor}` instead."
        return text


def deprecated(
    *, since: date, sunset: date, successor: str | None = None, docs: str = "/docs"
) -> Callable[[Any], Any]:
    """Mark a view handler or view class deprecated from `since` until `sunset` (at least
    MIN_NOTICE_DAYS later)."""
    if (sunset - since).days < MIN_NOTICE_DAYS:
        raise ValueError(
            f"A sunset {sunset} gives less than {MIN_NOTICE_DAYS} days' notice after {since}."
        )
    marker = Deprecation(since=since, sunset=sunset, successor=successor, docs=docs)

    def mark(target: Any) -> Any:
        setattr(target, DEPRECATION_ATTR, marker)
        return target

    return mark


def deprecation_of(view_class: type | None, handler_name: str | None) -> Deprecation | None:
    """The deprecation of the operation `handler_name` of `view_class` (its own, else the
    class's), or None."""
    if view_class is None:
        return None
    handler = getattr(view_class, handler_name, None) if handler_name else None
    return getattr(handler, DEPRECATION_ATTR, None) or getattr(view_class, DEPRECATION_ATTR, None)


def request_deprecation(request) -> Deprecation | None:
    """The deprecation of the operation that served `request`, from its resolved view (DRF's
    `as_view()` keeps the class in `.cls` and a viewset's method map in `.actions`)."""
    match = getattr(request, "resolver_match", None)
    if match is None:
        return None
    view = match.func
    view_class = getattr(view, "cls", None) or getattr(view, "view_class", None)
    method = request.method.lower()
    actions = getattr(view, "actions", None)
    handler = actions.get(method) if actions else method
    return deprecation_of(view_class, handler)
