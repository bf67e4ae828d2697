"""parse_plan: subtasks out of whatever shape a manager answered in."""

import pytest

from swarms.engine.plan import MAX_SUBTASK_CHARS, parse_plan


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('["Costs", "Policy", "Outlook"]', ["Costs", "Policy", "Outlook"]),
        ('Here is my plan:\n```json\n["Costs", "Policy"]\n```\nGood luck!', ["Costs", "Policy"]),
        ('```\n["Costs", "Policy"]\n```', ["Costs", "Policy"]),
        ('{"subtasks": ["Costs", "Policy"]}', ["Costs", "Policy"]),
        ('{"tasks": [{"task": "Costs"}, {"description": "Policy"}, {"title": "Outlook"}]}',
         ["Costs", "Policy", "Outlook"]),
        ('{"Plan": [{"id": 1, "title": "Costs"}]}', ["Costs"]),
        ('{"plan": {"steps": ["Costs", "Policy"]}}', ["Costs", "Policy"]),
        ('Sure! The plan is {"subtasks": ["Costs", "Policy"]} as requested.', ["Costs", "Policy"]),
        ("I suggest [see below]:\n1. Costs\n2. Policy", ["Costs", "Policy"]),
        ("Plan:\n1. Costs of electrolysis\n2) Policy\n(3) Outlook",
         ["Costs of electrolysis", "Policy", "Outlook"]),
        ("- Costs\n* Policy\n+ Outlook\n• Export", ["Costs", "Policy", "Outlook", "Export"]),
        ("- **Costs**: capex and opex\n- Policy", ["Costs: capex and opex", "Policy"]),
        ('["  Costs  ", "", "costs", "Policy\\n  and   law", 7, null]',
         ["Costs", "Policy and law"]),
        ('[{"task": "Costs"}, {"other": "x"}]', ["Costs"]),
    ],
)  # fmt: skip
def test_parses_common_shapes(text, expected):
    assert parse_plan(text, max_items=10) == expected


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   ",
        "I cannot help with planning this.",
        "{not json at all",
        '{"answer": "no list here"}',
        "[1, 2, 3]",
        '{"subtasks": []}',
        "null",
    ],
)
def test_nothing_usable_gives_empty_list(text):
    assert parse_plan(text, max_items=5) == []


def test_caps_count_and_length():
    items = [f"subtask {n}" for n in range(10)]
    assert parse_plan(str(items).replace("'", '"'), max_items=3) == items[:3]
    assert parse_plan('["a", "b"]', max_items=0) == []
    long = "x" * 2000
    (only,) = parse_plan(f'["{long}"]', max_items=5)
    assert len(only) == MAX_SUBTASK_CHARS


def test_dedupe_counts_towards_the_cap_only_once():
    assert parse_plan('["A", "a", "A ", "B", "C"]', max_items=2) == ["A", "B"]
