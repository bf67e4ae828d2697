"""Definitions are parsed with libyaml's parser where PyYAML has it: the same values as
`yaml.safe_load` for every document, and PyYAML's own error for a document either refuses."""

from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from sverm.api.errors import InvalidRequest
from templates_app import services
from templates_app.services import _load_yaml, _yaml_fast

BUILTIN = sorted((Path(services.__file__).parent / "builtin").glob("*.y*ml"))

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.text(max_size=30),
    st.floats(allow_nan=False), st.sampled_from(["yes", "no", "on", "0x1F", "1e3", "~", "null"]),
)  # fmt: skip
documents = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=20,
)


def test_libyaml_is_used_where_pyyaml_has_it():
    assert services._FAST_LOADER is (yaml.CSafeLoader if yaml.__with_libyaml__ else yaml.SafeLoader)


@pytest.mark.parametrize("path", BUILTIN, ids=lambda path: path.name)
def test_the_builtin_templates_read_the_same(path):
    text = path.read_text()
    assert _yaml_fast(text) == yaml.safe_load(text)


@settings(max_examples=300, deadline=None)
@given(documents, st.sampled_from([None, False, True]))
def test_any_document_reads_the_same(value, flow):
    text = yaml.safe_dump(value, default_flow_style=flow, allow_unicode=True)
    assert _yaml_fast(text) == yaml.safe_load(text) == _load_yaml(text)


@pytest.mark.parametrize(
    ("text", "detail"),
    [
        ("agents:\n  - id: a\n   role: x\n", "line 3, column 4"),
        ("a: [1, 2\n", "line 2, column 1"),
        ("a: 'open\n", "line 2, column 1"),
        ("[" * 1200 + "]" * 1200, "nests too deeply"),
    ],
)
def test_a_refused_document_gets_pyyamls_message(text, detail):
    with pytest.raises(InvalidRequest) as refused:
        _load_yaml(text)
    assert detail in str(refused.value)
