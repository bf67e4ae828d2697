"""Prefixed, time-sortable ids."""

import re

import pytest

from sverm.api.ids import PREFIXES, PrefixedIdField, has_prefix, new_id


@pytest.mark.parametrize("prefix", sorted(PREFIXES.values()))
def test_ids_have_the_prefix_and_a_lowercase_ulid(prefix):
    value = new_id(prefix)
    assert re.fullmatch(rf"{prefix}_[0-9a-hjkmnp-tv-z]{{26}}", value)
    assert has_prefix(value, prefix)


def test_ids_sort_by_creation_time():
    ids = [new_id("run") for _ in range(200)]
    assert len(set(ids)) == 200
    assert [i[:14] for i in ids] == sorted(i[:14] for i in ids)  # the time part never goes back


def test_unknown_prefix_is_refused():
    with pytest.raises(ValueError):
        new_id("xyz")
    with pytest.raises(ValueError):
        PrefixedIdField(prefix="xyz")


def test_has_prefix_rejects_others():
    assert not has_prefix("wsp_123", "wsp")
    assert not has_prefix(new_id("usr"), "wsp")


def test_field_fills_itself_and_deconstructs():
    field = PrefixedIdField(prefix="wsp")
    assert field.get_default().startswith("wsp_")
    _, _, _, kwargs = field.deconstruct()
    assert kwargs == {"prefix": "wsp"}
