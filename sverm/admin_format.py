"""How the admin pages show times, durations and money: to the second, relative with the exact
time at hand, and USD with 6 decimals (never rounded to cents: $0.0018 is not "0.00"); and the
links between the apps' pages, by URL name."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.http import urlencode
from django.utils.safestring import SafeString

from sverm.money import money, money_exact

EMPTY = "—"


def exact_time(moment: datetime | None) -> str:
    """`2026-12-05 06:19:03 UTC`: in the site's time zone, to the second."""
    if moment is None:
        return EMPTY
    return timezone.localtime(moment).strftime("%Y-%m-%d %H:%M:%S %Z")


def duration_text(span: timedelta) -> str:
    """`42s`, `3m 05s`, `2h 07m`, `3d 04h`: two units at most, for narrow columns."""
    seconds = max(int(span.total_seconds()), 0)
    minutes, seconds = divmod(seconds, 60)
    hours, minutes = divmod(minutes, 60)
    days, hours = divmod(hours, 24)
    if days:
        return f"{days}d {hours:02d}h"
    if hours:
        return f"{hours}h {minutes:02d}m"
    if minutes:
        return f"{minutes}m {seconds:02d}s"
    return f"{seconds}s"


def time_ago(moment: datetime | None, *, now: datetime | None = None, css: str = "") -> str:
    """`12s ago` in a <time> element whose title is the exact time (shown on hover)."""
    if moment is None:
        return EMPTY
    span = (now or timezone.now()) - moment
    text = f"in {duration_text(-span)}" if span < timedelta(0) else f"{duration_text(span)} ago"
    return format_html(
        '<time class="{}" datetime="{}" title="{}">{}</time>',
        css,
        moment.isoformat(),
        exact_time(moment),
        text,
    )


def usd_text(amount: Decimal | None) -> str:
    """`$0.001800`: the amount as shown everywhere (6 decimals, rounded down)."""
    if amount is None:
        return EMPTY
    return f"${money(amount)}"


def usd_cell(amount: Decimal | None) -> SafeString | str:
    """`usd_text` with every digit of the exact amount on hover."""
    if amount is None:
        return EMPTY
    return format_html(
        '<span class="money" title="exactly ${}">{}</span>', money_exact(amount), usd_text(amount)
    )


def filtered_changelist(url_name: str, **params: str) -> str:
    """An admin list's URL, filtered by `params` (its query string)."""
    return f"{reverse(url_name)}?{urlencode(params)}"


def usage_report_url(workspace_id: str, moment: datetime | None = None) -> str:
    """The billing app's usage report of a workspace for the month (UTC, as billing's months
    are) of `moment`, now by default."""
    month = (moment or timezone.now()).astimezone(UTC)
    return filtered_changelist(
        "admin:billing_monthlyusage_report", workspace=workspace_id, month=f"{month:%Y-%m}"
    )
