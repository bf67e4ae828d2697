"""Case-insensitive matching folds Unicode on SQLite as on PostgreSQL (sverm/text_match.py): the
`name=` shorthand and `"mode": "insensitive"` of the list engine find `Épsilon` for `épsilon`
on both databases (this file runs on each), and both agree where PostgreSQL's UPPER keeps a
character (`ß`)."""

import json

import pytest

from accounts.models import User
from sverm.text_match import unicode_upper
from swarms.services import swarm_create

pytestmark = pytest.mark.django_db

NAMES = ["Épsilon", "ÉPSILON two", "épsilon three", "Epsilon plain", "Σίγμα", "Straße", "ЖУК"]


@pytest.fixture
def swarms(workspace, user):
    return {name: swarm_create(workspace=workspace, name=name, created_by=user) for name in NAMES}


def names(api_client, **params) -> set[str]:
    if "filter" in params:
        params["filter"] = json.dumps(params["filter"])
    response = api_client.get("/api/swarms", {"limit": 100, **params})
    assert response.status_code == 200, response.content
    return {row["name"] for row in response.json()["data"]}


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("épsilon", {"Épsilon", "ÉPSILON two", "épsilon three"}),
        ("ÉPSILON", {"Épsilon", "ÉPSILON two", "épsilon three"}),
        ("ΣΊΓΜΑ", {"Σίγμα"}),
        ("жук", {"ЖУК"}),
        ("psilon", {"Épsilon", "ÉPSILON two", "épsilon three", "Epsilon plain"}),
        ("STRAßE", {"Straße"}),
        ("strasse", set()),  # PostgreSQL's UPPER keeps ß; so does SQLite now
    ],
)
def test_the_name_shorthand_folds_unicode_case(api_client, swarms, query, expected):
    assert names(api_client, name=query) == expected


@pytest.mark.parametrize(
    ("condition", "expected"),
    [
        ({"contains": "ÉPS", "mode": "insensitive"}, {"Épsilon", "ÉPSILON two", "épsilon three"}),
        ({"eq": "épsilon", "mode": "insensitive"}, {"Épsilon"}),
        ({"neq": "épsilon", "mode": "insensitive"}, set(NAMES) - {"Épsilon"}),
        ({"startsWith": "éps", "mode": "insensitive"}, {"Épsilon", "ÉPSILON two", "épsilon three"}),
        ({"endsWith": "ΓΜΑ", "mode": "insensitive"}, {"Σίγμα"}),
        ({"endsWith": "STRASSE", "mode": "insensitive"}, set()),
        # The default mode still respects case, ASCII or not.
        ({"contains": "ÉPS"}, {"ÉPSILON two"}),
        ({"eq": "épsilon"}, set()),
    ],
)
def test_filter_mode_insensitive_folds_unicode_case(api_client, swarms, condition, expected):
    assert names(api_client, filter={"name": condition}) == expected


def test_a_relation_filter_folds_unicode_case(api_client, swarms, user):
    User.objects.filter(pk=user.pk).update(name="Ångström")
    found = names(
        api_client, filter={"creator": {"name": {"eq": "åNGSTRÖM", "mode": "insensitive"}}}
    )
    assert found == set(NAMES)


@pytest.mark.parametrize(
    ("text", "upper"),
    [("épsilon", "ÉPSILON"), ("σίγμα ς", "ΣΊΓΜΑ Σ"), ("straße", "STRAßE"), ("ﬁ ŉ", "ﬁ ŉ"),
     ("ǆ", "Ǆ"), ("abc", "ABC"), ("", "")],
)  # fmt: skip
def test_unicode_upper_maps_each_character_as_postgresql_upper(text, upper):
    assert unicode_upper(text) == upper
