"""Links between the operator pages of the admin (a run's page and lists filtered to an object)
and their stylesheet."""

from django.contrib.admin.utils import quote
from django.urls import reverse
from django.utils.html import format_html

from sverm.admin_format import EMPTY

# The operator pages' stylesheet: compact columns, badges, the run page's sections.
ADMIN_CSS = {"all": ["sverm/admin.css"]}


def run_admin_url(run_id: str) -> str:
    return reverse("admin:swarms_run_change", args=[quote(run_id)])


def short_run_id(run_id: str) -> str:
    """`01jf…k2ab3c`: the start of the ULID (its time) and its last characters, for a narrow
    column of runs (the full id is its title and its link)."""
    return f"{run_id[4:8]}…{run_id[-6:]}" if len(run_id) > 16 else run_id


def run_link(run_id: str | None) -> str:
    if not run_id:
        return EMPTY
    return format_html('<a href="{}" title="{}">{}</a>', run_admin_url(run_id), run_id,
                       short_run_id(run_id))  # fmt: skip


def clipped(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
