"""The list engine on GET /api/swarms: every filter operator per field type, AND/OR/NOT, relation
traversal, `mode`, `ids`, `orderBy` with its nulls variants, and a 400 naming the problem for every
bad input (leaving the database as it was)."""

import json
from datetime import UTC, datetime

import pytest
from django.db import connection

from accounts.models import Membership, User
from swarms.models import Swarm, SwarmVersion
from swarms.services import (
    swarm_create,
    swarm_soft_delete,
    swarm_update,
    swarm_version_create,
)
from tests.conftest import assert_problem

pytestmark = pytest.mark.django_db

SQLITE = connection.vendor == "sqlite"
POSTGRES = connection.vendor == "postgresql"
ALIVE = {"Alpha Bot", "beta-bot", "Gamma", "delta"}


def at(month: int, day: int = 1, hour: int = 0) -> datetime:
    return datetime(2024, month, day, hour, tzinfo=UTC)


@pytest.fixture
def fleet(user, workspace, make_user, other_workspace, other_user):
    """Four living swarms and a deleted one, plus a look-alike in a workspace `user` can't see.

    | name      | description | tier      | runtime | default | creator | created  | deleted  |
    | Alpha Bot | first       | ephemeral | ada     | v1      | owner   | Jan 1    |          |
    | beta-bot  |             | standard  |         | v3      | owner   | Feb 1    |          |
    | Gamma     | third bot   | extended  | bob     | v2      | bob     | Mar 1    |          |
    | delta     | no version  | standard  |         |         |         | Apr 1    |          |
    | omega     | gone        | ephemeral | ada     | v1      | owner   | May 1    | Jun 1    |
    """
    ada = make_user(email="ada@example.com", name="Ada")
    bob = make_user(email="bob@corp.test", name="Bob")
    for member in (ada, bob):
        Membership.objects.create(workspace=workspace, user=member, role="operator")

    def make(name, description, tier, runtime, created_by, created, versions=1):
        swarm = swarm_create(
            workspace=workspace,
            name=name,
            description=description,
            created_by=created_by,
            retention_tier=tier,
        )
        for _ in range(versions - 1):
            swarm_version_create(swarm=swarm, created_by=created_by, set_default=True)
        if runtime is not None:
            swarm_update(swarm=swarm, data={"runtime_user_id": runtime.pk})
        Swarm.objects.filter(pk=swarm.pk).update(created_at=created)
        swarm.refresh_from_db()
        return swarm

    swarms = {
        "alpha": make("Alpha Bot", "first", "ephemeral", ada, user, at(1)),
        "beta": make("beta-bot", "", "standard", None, user, at(2), versions=3),
        "gamma": make("Gamma", "third bot", "extended", bob, bob, at(3), versions=2),
        "delta": make("delta", "no version", "standard", None, None, at(4)),
        "omega": make("omega", "gone", "ephemeral", ada, user, at(5)),
    }
    Swarm.objects.filter(pk=swarms["delta"].pk).update(default_version=None)
    swarm_soft_delete(swarm=swarms["omega"])
    Swarm.objects.filter(pk=swarms["omega"].pk).update(deleted_at=at(6))
    elsewhere = swarm_create(workspace=other_workspace, name="Alpha Bot", created_by=other_user)
    for swarm in swarms.values():
        swarm.refresh_from_db()
    return {**swarms, "ada": ada, "bob": bob, "elsewhere": elsewhere}


def encode(params: dict) -> dict:
    return {k: v if isinstance(v, str) else json.dumps(v) for k, v in params.items()}


def listing(client, **params) -> dict:
    response = client.get("/api/swarms", encode(params))
    assert response.status_code == 200, response.content
    return response.json()


def names(client, filter=None, **params) -> set[str]:
    if filter is not None:
        params["filter"] = filter
    body = listing(client, **params)
    found = [row["name"] for row in body["data"]]
    assert len(found) == len(set(found)) == body["pageInfo"]["total"]
    return set(found)


def ordered(client, order, **params) -> list[str]:
    return [row["name"] for row in listing(client, orderBy=order, **params)["data"]]


# ---------------------------------------------------------------------------------------------
# Operators per field type
# ---------------------------------------------------------------------------------------------
def test_without_a_filter_only_living_swarms_of_my_workspaces(api_client, fleet):
    assert names(api_client) == ALIVE
    assert names(api_client, include_deleted="true") == ALIVE | {"omega"}
    assert names(api_client, include_deleted="only") == {"omega"}


@pytest.mark.parametrize(
    ("ops", "expected"),
    [
        ({"eq": "Gamma"}, {"Gamma"}),
        ({"eq": "gamma"}, set()),  # eq is exact: case matters
        ({"neq": "Gamma"}, {"Alpha Bot", "beta-bot", "delta"}),
        ({"in": ["Gamma", "delta", "nobody"]}, {"Gamma", "delta"}),
        ({"in": []}, set()),
        ({"notIn": ["Gamma", "delta"]}, {"Alpha Bot", "beta-bot"}),
        ({"notIn": []}, ALIVE),
        # Codepoint order: "Alpha Bot" < "Gamma" < "beta-bot" < "delta".
        ({"lt": "Gamma"}, {"Alpha Bot"}),
        ({"lte": "Gamma"}, {"Alpha Bot", "Gamma"}),
        ({"gt": "Gamma"}, {"beta-bot", "delta"}),
        ({"gte": "beta-bot"}, {"beta-bot", "delta"}),
        ({"gt": "Alpha Bot", "lt": "delta"}, {"Gamma", "beta-bot"}),
        ({"contains": "-b"}, {"beta-bot"}),
        ({"contains": "lt"}, {"delta"}),
        ({"startsWith": "Gam"}, {"Gamma"}),
        ({"endsWith": "ta"}, {"delta"}),
        ({"isNull": False}, ALIVE),
        ({"isNull": True}, set()),
        ({"eq": None}, set()),
        ({"neq": None}, ALIVE),
    ],
)
def test_string_operators(api_client, fleet, ops, expected):
    assert names(api_client, {"name": ops}) == expected


@pytest.mark.parametrize(
    ("ops", "expected"),
    [
        ({"eq": "first"}, {"Alpha Bot"}),
        ({"eq": ""}, {"beta-bot"}),
        ({"neq": ""}, {"Alpha Bot", "Gamma", "delta"}),
        ({"contains": " "}, {"Gamma", "delta"}),
        ({"contains": "%"}, set()),  # LIKE wildcards are literal
        ({"contains": "_"}, set()),
        ({"startsWith": ""}, ALIVE),
    ],
)
def test_string_operators_on_description(api_client, fleet, ops, expected):
    assert names(api_client, {"description": ops}) == expected


@pytest.mark.parametrize(
    ("ops", "expected"),
    [
        ({"eq": "alpha bot"}, {"Alpha Bot"}),
        ({"eq": "ALPHA BOT"}, {"Alpha Bot"}),
        ({"neq": "GAMMA"}, {"Alpha Bot", "beta-bot", "delta"}),
        ({"contains": "BOT"}, {"Alpha Bot", "beta-bot"}),
        ({"startsWith": "gAm"}, {"Gamma"}),
        ({"endsWith": "TA"}, {"delta"}),
        ({"endsWith": "BOT", "startsWith": "B"}, {"beta-bot"}),
    ],
)
def test_insensitive_mode(api_client, fleet, ops, expected):
    assert names(api_client, {"name": {**ops, "mode": "insensitive"}}) == expected


def test_default_mode_is_case_sensitive_for_exact_match(api_client, fleet):
    assert names(api_client, {"name": {"eq": "GAMMA", "mode": "default"}}) == set()
    assert names(api_client, {"name": {"eq": "Gamma", "mode": "default"}}) == {"Gamma"}


@pytest.mark.parametrize(
    ("ops", "expected"),
    [
        ({"contains": "Bot"}, {"Alpha Bot"}),
        ({"startsWith": "gam"}, set()),
        ({"endsWith": "BOT"}, set()),
    ],
)
def test_default_mode_is_case_sensitive_for_pattern_operators(api_client, fleet, ops, expected):
    assert names(api_client, {"name": ops}) == expected


@pytest.mark.parametrize(
    ("ops", "expected"),
    [
        # delta has no default version: a null number, kept by neq/notIn, never by comparisons.
        ({"eq": 3}, {"beta-bot"}),
        ({"neq": 3}, {"Alpha Bot", "Gamma", "delta"}),
        ({"in": [1, 2]}, {"Alpha Bot", "Gamma"}),
        ({"notIn": [1]}, {"beta-bot", "Gamma", "delta"}),
        ({"lt": 2}, {"Alpha Bot"}),
        ({"lte": 2}, {"Alpha Bot", "Gamma"}),
        ({"gt": 1}, {"beta-bot", "Gamma"}),
        ({"gte": 3}, {"beta-bot"}),
        ({"gt": 1, "lt": 3}, {"Gamma"}),
        ({"isNull": True}, {"delta"}),
        ({"eq": None}, {"delta"}),
        ({"isNull": False}, {"Alpha Bot", "beta-bot", "Gamma"}),
    ],
)
def test_integer_operators_through_default_version(api_client, fleet, ops, expected):
    assert names(api_client, {"defaultVersion": {"number": ops}}) == expected


@pytest.mark.parametrize(
    ("ops", "expected"),
    [
        ({"eq": "2024-02-01T00:00:00Z"}, {"beta-bot"}),
        ({"eq": "2024-02-01T01:00:00+01:00"}, {"beta-bot"}),  # the same instant
        ({"eq": "2024-02-01T00:00:00"}, {"beta-bot"}),  # naive: UTC, the server's zone
        ({"eq": "2024-02-01T00:00:00.000001Z"}, set()),
        ({"neq": "2024-02-01T00:00:00Z"}, {"Alpha Bot", "Gamma", "delta"}),
        ({"in": ["2024-01-01T00:00:00Z", "2024-04-01T00:00:00Z"]}, {"Alpha Bot", "delta"}),
        ({"notIn": ["2024-01-01T00:00:00Z"]}, {"beta-bot", "Gamma", "delta"}),
        ({"lt": "2024-02-01T00:00:00Z"}, {"Alpha Bot"}),
        ({"lte": "2024-02-01T00:00:00Z"}, {"Alpha Bot", "beta-bot"}),
        ({"gt": "2024-03-01T00:00:00Z"}, {"delta"}),
        ({"gte": "2024-03-01T00:00:00Z"}, {"Gamma", "delta"}),
        ({"gte": "2024-02-01T00:00:00Z", "lt": "2024-04-01T00:00:00Z"}, {"beta-bot", "Gamma"}),
        ({"isNull": False}, ALIVE),
    ],
)
def test_datetime_operators_on_created_at(api_client, fleet, ops, expected):
    assert names(api_client, {"createdAt": ops}) == expected


@pytest.mark.parametrize(
    ("ops", "expected"),
    [
        ({"eq": "2024-06-01T00:00:00Z"}, {"omega"}),
        ({"eq": None}, ALIVE),
        ({"neq": "2024-06-01T00:00:00Z"}, ALIVE),  # null deletedAt is kept
        ({"neq": None}, {"omega"}),
        ({"isNull": True}, ALIVE),
        ({"isNull": False}, {"omega"}),
        ({"in": ["2024-06-01T00:00:00Z"]}, {"omega"}),
        ({"notIn": ["2024-06-01T00:00:00Z"]}, ALIVE),
        ({"lt": "2024-06-01T00:00:01Z"}, {"omega"}),
        ({"lte": "2024-06-01T00:00:00Z"}, {"omega"}),
        ({"gt": "2024-06-01T00:00:00Z"}, set()),
        ({"gte": "2024-05-31T23:59:59Z"}, {"omega"}),
    ],
)
def test_datetime_operators_on_nullable_deleted_at(api_client, fleet, ops, expected):
    assert names(api_client, {"deletedAt": ops}, include_deleted="true") == expected


@pytest.mark.parametrize(
    ("ops", "expected"),
    [
        ({"eq": "standard"}, {"beta-bot", "delta"}),
        ({"neq": "standard"}, {"Alpha Bot", "Gamma"}),
        ({"in": ["ephemeral", "extended"]}, {"Alpha Bot", "Gamma"}),
        ({"notIn": ["ephemeral", "extended"]}, {"beta-bot", "delta"}),
        ({"isNull": False}, ALIVE),
        ({"isNull": True}, set()),
    ],
)
def test_enum_operators(api_client, fleet, ops, expected):
    assert names(api_client, {"retentionTier": ops}) == expected


@pytest.mark.parametrize(
    ("ops", "expected"),
    [
        ({"eq": "ADA"}, {"Alpha Bot"}),
        ({"eq": None}, {"beta-bot", "delta"}),
        ({"neq": "ADA"}, {"beta-bot", "Gamma", "delta"}),  # nulls kept
        ({"neq": None}, {"Alpha Bot", "Gamma"}),
        ({"in": ["ADA", "BOB"]}, {"Alpha Bot", "Gamma"}),
        ({"notIn": ["ADA"]}, {"beta-bot", "Gamma", "delta"}),  # nulls kept
        ({"isNull": True}, {"beta-bot", "delta"}),
        ({"isNull": False}, {"Alpha Bot", "Gamma"}),
    ],
)
def test_nullable_id_operators_on_runtime_user_id(api_client, fleet, ops, expected):
    ids = {"ADA": fleet["ada"].pk, "BOB": fleet["bob"].pk}
    ops = {
        op: [ids[v] for v in value] if isinstance(value, list) else ids.get(value, value)
        for op, value in ops.items()
    }
    assert names(api_client, {"runtimeUserId": ops}) == expected


def test_nullable_id_operators_on_default_version_id(api_client, fleet):
    version = fleet["gamma"].default_version_id
    assert names(api_client, {"defaultVersionId": {"isNull": True}}) == {"delta"}
    assert names(api_client, {"defaultVersionId": {"eq": version}}) == {"Gamma"}
    assert names(api_client, {"defaultVersionId": {"neq": version}}) == {
        "Alpha Bot",
        "beta-bot",
        "delta",
    }
    assert names(api_client, {"defaultVersionId": {"notIn": [version]}}) == {
        "Alpha Bot",
        "beta-bot",
        "delta",
    }


def test_id_and_workspace_fields(api_client, fleet, workspace):
    assert names(api_client, {"id": {"eq": fleet["beta"].pk}}) == {"beta-bot"}
    assert names(api_client, {"workspaceId": {"eq": workspace.pk}}) == ALIVE
    # Naming another workspace in a filter does not widen the caller's scope.
    other = fleet["elsewhere"].workspace_id
    assert names(api_client, {"workspaceId": {"eq": other}}) == set()
    assert names(api_client, {"id": {"eq": fleet["elsewhere"].pk}}) == set()


# ---------------------------------------------------------------------------------------------
# AND / OR / NOT
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("filter", "expected"),
    [
        # Several keys in one object, and several operators on one field, are ANDed.
        ({"retentionTier": {"eq": "standard"}, "name": {"startsWith": "d"}}, {"delta"}),
        (
            {
                "AND": [
                    {"retentionTier": {"eq": "standard"}},
                    {"defaultVersionId": {"isNull": False}},
                ]
            },
            {"beta-bot"},
        ),
        (
            {"OR": [{"name": {"eq": "Gamma"}}, {"retentionTier": {"eq": "ephemeral"}}]},
            {"Alpha Bot", "Gamma"},
        ),
        ({"OR": [{"name": {"eq": "Gamma"}}]}, {"Gamma"}),
        ({"NOT": {"retentionTier": {"eq": "standard"}}}, {"Alpha Bot", "Gamma"}),
        ({"NOT": {"NOT": {"name": {"eq": "delta"}}}}, {"delta"}),
        # NOT keeps rows whose value is null (~Q): beta and delta have no runtime user.
        (
            {"NOT": {"runtimeUser": {"email": {"eq": "ada@example.com"}}}},
            {"beta-bot", "Gamma", "delta"},
        ),
        ({"NOT": {"defaultVersion": {"number": {"gt": 1}}}}, {"Alpha Bot", "delta"}),
        (
            {
                "OR": [
                    {"AND": [{"name": {"contains": "bot"}}, {"description": {"eq": ""}}]},
                    {"NOT": {"OR": [{"name": {"lt": "a"}}, {"name": {"gt": "c"}}]}},
                ]
            },
            {"beta-bot"},
        ),
        (
            {
                "AND": [
                    {"OR": [{"retentionTier": {"eq": "standard"}}, {"name": {"eq": "Gamma"}}]},
                    {"NOT": {"runtimeUserId": {"eq": None}}},
                ]
            },
            {"Gamma"},
        ),
        ({"AND": [{"name": {"eq": "Gamma"}}, {"name": {"eq": "delta"}}]}, set()),
        ({"NOT": {}}, ALIVE),
    ],
)
def test_boolean_combinations(api_client, fleet, filter, expected):
    assert names(api_client, filter) == expected


def test_nesting_up_to_the_limit_is_accepted(api_client, fleet):
    filter = {"name": {"eq": "delta"}}
    for _ in range(5):  # the top object is level 1; five NOTs make level 6
        filter = {"NOT": filter}
    assert names(api_client, filter) == ALIVE - {"delta"}


def test_fifty_conditions_are_accepted(api_client, fleet):
    filter = {"OR": [{"name": {"eq": f"n{i}"}} for i in range(49)] + [{"name": {"eq": "Gamma"}}]}
    assert names(api_client, filter) == {"Gamma"}


# ---------------------------------------------------------------------------------------------
# Relations
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("filter", "expected"),
    [
        ({"defaultVersion": {"number": {"gt": 1}}}, {"beta-bot", "Gamma"}),
        ({"defaultVersion": None}, {"delta"}),
        ({"NOT": {"defaultVersion": None}}, {"Alpha Bot", "beta-bot", "Gamma"}),
        ({"creator": {"email": {"contains": "corp"}}}, {"Gamma"}),
        ({"creator": {"email": {"contains": "CORP", "mode": "insensitive"}}}, {"Gamma"}),
        ({"creator": {"email": {"eq": "owner@example.com"}}}, {"Alpha Bot", "beta-bot"}),
        ({"creator": None}, {"delta"}),
        ({"runtimeUser": None}, {"beta-bot", "delta"}),
        ({"NOT": {"runtimeUser": None}}, {"Alpha Bot", "Gamma"}),
        ({"runtimeUser": {"email": {"eq": "ada@example.com"}}}, {"Alpha Bot"}),
        ({"runtimeUser": {"name": {"in": ["Ada", "Bob"]}}}, {"Alpha Bot", "Gamma"}),
        ({"runtimeUser": {"email": {"endsWith": ".test"}}}, {"Gamma"}),
        ({"runtimeUser": {"email": {"isNull": True}}}, {"beta-bot", "delta"}),
        ({"workspace": {"name": {"eq": "Acme"}}}, ALIVE),
        ({"workspace": {"name": {"eq": "Elsewhere"}}}, set()),
        ({"defaultVersion": {"creator": {"email": {"eq": "bob@corp.test"}}}}, {"Gamma"}),
        (
            {"OR": [{"runtimeUser": None}, {"creator": {"name": {"eq": "Bob"}}}]},
            {"beta-bot", "Gamma", "delta"},
        ),
    ],
)
def test_relation_traversal(api_client, fleet, filter, expected):
    assert names(api_client, filter) == expected


def test_relation_filter_on_deleted_rows(api_client, fleet):
    filter = {"runtimeUser": {"email": {"eq": "ada@example.com"}}}
    assert names(api_client, filter, include_deleted="true") == {"Alpha Bot", "omega"}
    assert names(api_client, filter, include_deleted="only") == {"omega"}


def test_filter_combines_with_shorthand_and_paging(api_client, fleet):
    filter = {"NOT": {"name": {"eq": "delta"}}}
    body = listing(api_client, filter=filter, retention_tier="standard")
    assert [row["name"] for row in body["data"]] == ["beta-bot"]
    first = listing(api_client, filter=filter, limit="1", orderBy=[{"name": "asc"}])
    assert [row["name"] for row in first["data"]] == ["Alpha Bot"]
    assert first["pageInfo"]["total"] == 3 and first["pageInfo"]["hasNextPage"]
    cursor = first["pageInfo"]["endCursor"]
    rest = listing(api_client, filter=filter, orderBy=[{"name": "asc"}], after=cursor)
    assert [row["name"] for row in rest["data"]] == ["Gamma", "beta-bot"]


# ---------------------------------------------------------------------------------------------
# ids
# ---------------------------------------------------------------------------------------------
def test_ids_narrow_to_those_rows(api_client, fleet):
    alpha, gamma = fleet["alpha"].pk, fleet["gamma"].pk
    assert names(api_client, ids=f"{alpha},{gamma}") == {"Alpha Bot", "Gamma"}
    assert names(api_client, ids=f" {gamma} , ,{gamma},") == {"Gamma"}
    assert names(api_client, ids="swm_unknown") == set()


def test_ids_do_not_bypass_scoping_or_the_deleted_filter(api_client, fleet):
    elsewhere, omega, beta = fleet["elsewhere"].pk, fleet["omega"].pk, fleet["beta"].pk
    assert names(api_client, ids=f"{elsewhere},{omega},{beta}") == {"beta-bot"}
    assert names(api_client, ids=f"{elsewhere},{omega}", include_deleted="true") == {"omega"}


def test_ids_combine_with_filter(api_client, fleet):
    ids = ",".join(fleet[key].pk for key in ("alpha", "beta", "gamma"))
    assert names(api_client, {"runtimeUser": None}, ids=ids) == {"beta-bot"}


def test_a_hundred_ids_are_accepted(api_client, fleet):
    ids = ",".join([fleet["delta"].pk] + [f"swm_{i}" for i in range(99)])
    assert names(api_client, ids=ids) == {"delta"}


# ---------------------------------------------------------------------------------------------
# orderBy
# ---------------------------------------------------------------------------------------------
def test_default_order_is_newest_first(api_client, fleet):
    assert ordered(api_client, "") == ["delta", "Gamma", "beta-bot", "Alpha Bot"]
    body = api_client.get("/api/swarms").json()
    assert [row["name"] for row in body["data"]] == ["delta", "Gamma", "beta-bot", "Alpha Bot"]


def test_order_by_text_date_and_enum(api_client, fleet):
    assert ordered(api_client, [{"name": "asc"}]) == ["Alpha Bot", "Gamma", "beta-bot", "delta"]
    assert ordered(api_client, {"name": "desc"}) == ["delta", "beta-bot", "Gamma", "Alpha Bot"]
    assert ordered(api_client, [{"createdAt": "asc"}]) == [
        "Alpha Bot",
        "beta-bot",
        "Gamma",
        "delta",
    ]
    # ephemeral < extended < standard; ties (standard) by name descending.
    assert ordered(api_client, [{"retentionTier": "asc"}, {"name": "desc"}]) == [
        "Alpha Bot",
        "Gamma",
        "delta",
        "beta-bot",
    ]


def test_ties_are_broken_by_id_in_the_last_keys_direction(api_client, fleet):
    Swarm.objects.update(name="same", description="same")
    by_id = sorted(fleet[key].pk for key in ("alpha", "beta", "gamma", "delta"))

    def ids(order):
        return [row["id"] for row in listing(api_client, orderBy=order)["data"]]

    assert ids([{"name": "asc"}]) == by_id
    assert ids([{"name": "desc"}]) == by_id[::-1]
    assert ids([{"name": "desc"}, {"description": "asc"}]) == by_id
    assert ids([{"name": "asc"}, {"description": "desc_nulls_last"}]) == by_id[::-1]


def test_order_by_id_explicitly(api_client, fleet):
    by_id = sorted(fleet[key].pk for key in ("alpha", "beta", "gamma", "delta"))
    body = listing(api_client, orderBy=[{"id": "desc"}])
    assert [row["id"] for row in body["data"]] == by_id[::-1]


@pytest.fixture
def runtime_order(fleet):
    """Expected orders under each direction on runtimeUserId (ada, bob and two nulls)."""
    set_rows = sorted(
        [("Alpha Bot", fleet["ada"].pk), ("Gamma", fleet["bob"].pk)], key=lambda r: r[1]
    )
    set_names = [name for name, _ in set_rows]
    nulls = [
        name
        for name, _ in sorted(
            [("beta-bot", fleet["beta"].pk), ("delta", fleet["delta"].pk)], key=lambda r: r[1]
        )
    ]
    assert len(set(set_names + nulls)) == 4
    return {
        "asc": set_names + nulls,
        "asc_nulls_last": set_names + nulls,
        "asc_nulls_first": nulls + set_names,
        "desc": nulls[::-1] + set_names[::-1],
        "desc_nulls_first": nulls[::-1] + set_names[::-1],
        "desc_nulls_last": set_names[::-1] + nulls[::-1],
    }


@pytest.mark.parametrize(
    "direction",
    ["asc", "asc_nulls_last", "asc_nulls_first", "desc", "desc_nulls_first", "desc_nulls_last"],
)
def test_null_placement_per_direction(api_client, runtime_order, direction):
    order = [{"runtimeUserId": direction}]
    expected = runtime_order[direction]
    assert ordered(api_client, order) == expected
    # One row a page, forward then backward, crossing the null/non-null boundary both ways.
    body = listing(api_client, orderBy=order, limit="1")
    forward = [body["data"][0]["name"]]
    while body["pageInfo"]["hasNextPage"]:
        body = listing(api_client, orderBy=order, limit="1", after=body["pageInfo"]["endCursor"])
        forward.append(body["data"][0]["name"])
    assert forward == expected
    backward = [body["data"][0]["name"]]
    while body["pageInfo"]["hasPreviousPage"]:
        body = listing(api_client, orderBy=order, limit="1", before=body["pageInfo"]["startCursor"])
        backward.insert(0, body["data"][0]["name"])
    assert backward == expected


def test_null_placement_with_a_second_key(api_client, fleet):
    Swarm.objects.filter(pk=fleet["delta"].pk).update(retention_tier="ephemeral")
    # Among the nulls, the second key decides.
    order = [{"runtimeUserId": "asc_nulls_first"}, {"retentionTier": "desc"}]
    assert ordered(api_client, order)[:2] == ["beta-bot", "delta"]
    order = [{"runtimeUserId": "desc_nulls_last"}, {"retentionTier": "asc"}]
    assert ordered(api_client, order)[2:] == ["delta", "beta-bot"]


# ---------------------------------------------------------------------------------------------
# Bad input: 400 naming the problem, and nothing written
# ---------------------------------------------------------------------------------------------
def db_state() -> tuple:
    return (
        list(Swarm.objects.order_by("pk").values_list()),
        list(SwarmVersion.objects.order_by("pk").values_list()),
        list(User.objects.order_by("pk").values_list("pk", "email", "last_login")),
        list(Membership.objects.order_by("pk").values_list()),
    )


def deep(levels: int) -> dict:
    filter: dict = {"name": {"eq": "x"}}
    for _ in range(levels - 1):
        filter = {"NOT": filter}
    return filter


BAD_FILTERS = [
    ("{not json", "`filter` is not valid JSON"),
    ('{"name": {"eq": "x"}', "`filter` is not valid JSON"),
    ("[]", "filter: expected an object (SwarmFilter)"),
    ('"name"', "filter: expected an object (SwarmFilter)"),
    ("null", "filter: expected an object (SwarmFilter)"),
    ({"AND": [{"name": {"eq": "x"}}, 3]}, "filter.AND[1]: expected an object"),
    ({"nope": {"eq": "x"}}, "filter.nope: unknown field 'nope' for SwarmFilter"),
    ({"OR": [{"Name": {"eq": "x"}}]}, "filter.OR[0].Name: unknown field 'Name'"),
    ({"creator": {"password": {"eq": "x"}}}, "unknown field 'password' for UserFilter"),
    ({"defaultVersion": {"definition": {"eq": "x"}}}, "unknown field 'definition'"),
    ({"runtimeUser": {"email": {"like": "x"}}}, "filter.runtimeUser.email: unknown operator"),
    ({"name": {"like": "x"}}, "unknown operator 'like' for a string field"),
    ({"name": {"eq": "x", "regex": ".*"}}, "unknown operator 'regex'"),
    ({"retentionTier": {"lt": "standard"}}, "filter.retentionTier: unknown operator 'lt'"),
    ({"retentionTier": {"contains": "st"}}, "unknown operator 'contains'"),
    ({"defaultVersion": {"number": {"contains": 1}}}, "unknown operator 'contains'"),
    ({"createdAt": {"startsWith": "2024"}}, "unknown operator 'startsWith'"),
    ({"name": "Gamma"}, "filter.name: expected an object of operators"),
    ({"name": {}}, "filter.name: expected an object of operators"),
    ({"name": {"eq": 5}}, "filter.name.eq: expected a string"),
    ({"name": {"lt": None}}, "filter.name.lt: expected a string"),
    ({"name": {"in": ["a", 1]}}, "filter.name.in[1]: expected a string"),
    ({"name": {"eq": "x" * 1001}}, "filter.name.eq: longer than 1000 characters"),
    ({"defaultVersion": {"number": {"eq": "1"}}}, "number.eq: expected an integer"),
    ({"defaultVersion": {"number": {"gt": 1.5}}}, "number.gt: expected an integer"),
    ({"defaultVersion": {"number": {"eq": True}}}, "number.eq: expected an integer"),
    ({"defaultVersion": {"number": {"gt": 10**30}}}, "number.gt: expected an integer (64-bit)"),
    ({"retentionTier": {"eq": "forever"}}, "retentionTier.eq: expected one of ephemeral"),
    ({"retentionTier": {"in": ["standard", "STANDARD"]}}, "retentionTier.in[1]: expected one"),
    ({"name": {"isNull": "yes"}}, "filter.name.isNull: expected true or false"),
    ({"runtimeUserId": {"isNull": 1}}, "filter.runtimeUserId.isNull: expected true or false"),
    ({"createdAt": {"gt": "yesterday"}}, "filter.createdAt.gt: expected an ISO 8601 date-time"),
    ({"createdAt": {"gt": 1704067200}}, "filter.createdAt.gt: expected an ISO 8601 date-time"),
    ({"deletedAt": {"in": ["2024-01-01", "soon"]}}, "deletedAt.in[1]: expected an ISO 8601"),
    ({"name": {"in": "Gamma"}}, "filter.name.in: expected an array of at most 100 values"),
    ({"runtimeUserId": {"notIn": None}}, "runtimeUserId.notIn: expected an array of at most 100"),
    ({"name": {"in": [f"n{i}" for i in range(101)]}}, "expected an array of at most 100 values"),
    ({"name": {"notIn": [f"n{i}" for i in range(101)]}}, "expected an array of at most 100"),
    (deep(7), "the filter nests deeper than 6"),
    (
        {"defaultVersion": {"creator": {"NOT": {"NOT": {"NOT": {"NOT": {"email": {"eq": "x"}}}}}}}},
        "nests deeper than 6",
    ),
    ({"OR": [{"name": {"eq": f"n{i}"}} for i in range(51)]}, "has more than 50 conditions"),
    (
        {"name": {"in": ["a"], "notIn": ["b"], "neq": "c"}, "OR": [{"runtimeUser": None}] * 48},
        "has more than 50 conditions",
    ),
    ("[" + " " * 8192 + "]", "`filter` is longer than 8192 characters"),
    ({"name": {"lt": "a", "mode": "insensitive"}}, 'mode "insensitive" applies to eq, neq'),
    ({"name": {"in": ["a"], "mode": "insensitive"}}, 'filter.name.in: mode "insensitive"'),
    ({"name": {"gte": "a", "mode": "insensitive"}}, "filter.name.gte: mode"),
    ({"defaultVersion": {"number": {"eq": 1, "mode": "insensitive"}}}, "unknown operator 'mode'"),
    ({"name": {"eq": "a", "mode": "loose"}}, 'filter.name.mode: expected "default" or'),
    ({"name": {"eq": "a", "mode": None}}, 'expected "default" or "insensitive"'),
    ({"AND": []}, "filter.AND: expected a non-empty array of filters"),
    ({"OR": []}, "filter.OR: expected a non-empty array of filters"),
    ({"AND": {"name": {"eq": "x"}}}, "filter.AND: expected a non-empty array"),
    ({"NOT": []}, "filter.NOT: expected an object"),
    ({"runtimeUser": "ada@example.com"}, "filter.runtimeUser: expected an object (UserFilter)"),
]


@pytest.mark.parametrize(("filter", "needle"), BAD_FILTERS)
def test_bad_filter_is_400(api_client, fleet, filter, needle):
    before = db_state()
    response = api_client.get("/api/swarms", encode({"filter": filter}))
    body = assert_problem(response, 400, "invalid_request")
    assert needle in body["detail"], body["detail"]
    assert db_state() == before


BAD_ORDERS = [
    ("[{name: asc}]", "`orderBy` is not valid JSON"),
    ("[]", "`orderBy` must be a non-empty array"),
    ('"name"', "`orderBy` must be a non-empty array"),
    ("3", "`orderBy` must be a non-empty array"),
    ([{"nope": "asc"}], "orderBy[0]: cannot order by 'nope'; sortable:"),
    ([{"name": "asc"}, {"Name": "asc"}], "orderBy[1]: cannot order by 'Name'"),
    ([{"creator": "asc"}], "cannot order by 'creator'"),  # a relation, not a sortable field
    ([{"name": "up"}], "orderBy[0]: unknown direction 'up'; use asc, desc"),
    ([{"name": "ASC"}], "unknown direction 'ASC'"),
    ([{"name": None}], "unknown direction None"),
    ([{"name": "asc"}, {"name": "desc"}], "orderBy[1]: 'name' appears twice"),
    ([{"name": "asc", "id": "desc"}], "orderBy[0]: expected one {field: direction} pair"),
    ([{}], "orderBy[0]: expected one {field: direction} pair"),
    (["name"], "orderBy[0]: expected one {field: direction} pair"),
    (
        [{f: "asc"} for f in ("name", "description", "createdAt", "updatedAt", "id", "deletedAt")],
        "`orderBy` takes at most 5 keys",
    ),
    ("[" + " " * 8192 + "]", "`orderBy` is longer than 8192 characters"),
]


@pytest.mark.parametrize(("order", "needle"), BAD_ORDERS)
def test_bad_order_by_is_400(api_client, fleet, order, needle):
    before = db_state()
    response = api_client.get("/api/swarms", encode({"orderBy": order}))
    body = assert_problem(response, 400, "invalid_request")
    assert needle in body["detail"], body["detail"]
    assert db_state() == before


def test_five_order_keys_are_accepted(api_client, fleet):
    order = [{f: "desc"} for f in ("retentionTier", "description", "createdAt", "updatedAt")]
    # standard (delta, beta-bot by description desc), extended, ephemeral.
    assert ordered(api_client, [*order, {"name": "asc"}]) == [
        "delta",
        "beta-bot",
        "Gamma",
        "Alpha Bot",
    ]


def test_unsortable_field_is_400(api_client, fleet):
    # Swarm fields are all sortable; a version's instructions are not.
    before = db_state()
    url = f"/api/swarms/{fleet['gamma'].pk}/versions"
    response = api_client.get(url, encode({"orderBy": [{"instructions": "asc"}]}))
    body = assert_problem(response, 400, "invalid_request")
    assert "cannot order by 'instructions'" in body["detail"]
    assert "instructions" not in body["detail"].split("sortable:")[1]
    assert db_state() == before
    ok = api_client.get(url, encode({"orderBy": [{"number": "asc"}]}))
    assert [v["number"] for v in ok.json()["data"]] == [1, 2]


@pytest.mark.parametrize(
    ("ids", "needle"),
    [
        ("", "`ids` must list at least one id"),
        (" , ,", "`ids` must list at least one id"),
        (",".join(f"swm_{i}" for i in range(101)), "`ids` takes at most 100 ids"),
    ],
)
def test_bad_ids_are_400(api_client, fleet, ids, needle):
    before = db_state()
    body = assert_problem(api_client.get("/api/swarms", {"ids": ids}), 400, "invalid_request")
    assert needle in body["detail"]
    assert db_state() == before


def test_bad_input_on_a_later_page_is_still_400(api_client, fleet):
    cursor = listing(api_client, limit="1")["pageInfo"]["endCursor"]
    response = api_client.get(
        "/api/swarms", encode({"after": cursor, "filter": {"name": {"eq": 1}}})
    )
    assert "filter.name.eq" in assert_problem(response, 400, "invalid_request")["detail"]


# ---------------------------------------------------------------------------------------------
# Inputs that once escaped as 500s: impossible dates, deep nesting, odd types, bad text.
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "value",
    [
        "2024-13-01T00:00:00Z",
        "2024-02-30T00:00:00Z",
        "2024-01-01T25:00:00Z",
        "2024-01-01T00:00:00+25:00",
    ],
)
def test_invalid_calendar_datetime_is_400(api_client, fleet, value):
    response = api_client.get("/api/swarms", encode({"filter": {"createdAt": {"gt": value}}}))
    assert "createdAt.gt" in assert_problem(response, 400, "invalid_request")["detail"]


@pytest.mark.parametrize("value", ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00"])
def test_datetime_overflowing_in_utc_is_400(api_client, fleet, value):
    response = api_client.get("/api/swarms", encode({"filter": {"createdAt": {"gt": value}}}))
    assert "createdAt.gt" in assert_problem(response, 400, "invalid_request")["detail"]


@pytest.mark.parametrize("param", ["filter", "orderBy"])
def test_deeply_nested_json_is_400(api_client, fleet, param):
    response = api_client.get("/api/swarms", {param: "[" * 3000 + "]" * 3000})
    assert param in assert_problem(response, 400, "invalid_request")["detail"]


@pytest.mark.parametrize("direction", [["asc"], {"asc": True}])
def test_non_string_direction_is_400(api_client, fleet, direction):
    response = api_client.get("/api/swarms", encode({"orderBy": [{"name": direction}]}))
    assert "orderBy[0]" in assert_problem(response, 400, "invalid_request")["detail"]


def test_lone_surrogate_in_a_filter_string_is_400(api_client, fleet):
    response = api_client.get("/api/swarms", {"filter": '{"name": {"eq": "\\ud800"}}'})
    assert "filter.name.eq" in assert_problem(response, 400, "invalid_request")["detail"]


@pytest.mark.parametrize(
    "params",
    [{"filter": {"name": {"eq": "a\u0000b"}}}, {"ids": "swm_a\u0000b"}],
    ids=["filter", "ids"],
)
def test_nul_character_is_400(api_client, fleet, params):
    response = api_client.get("/api/swarms", encode(params))
    assert "NUL" in assert_problem(response, 400, "invalid_request")["detail"]
