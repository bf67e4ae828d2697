"""Requests per minute per plan (seed 002): per API key or user, fixed minute windows, the
X-RateLimit-* headers on every authenticated response, 429 `rate_limited` over the limit."""

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from accounts.models import Membership, Plan, PlanLimits
from accounts.roles import Role
from accounts.services import plan_limits_update, workspace_create
from tests.conftest import PASSWORD, assert_problem, assert_v1_error, jwt_client
from tests.limits.conftest import FROZEN_NOW, WINDOW_END, has_limit_headers, limit_headers

pytestmark = pytest.mark.usefixtures("rate_limits_on", "plan_rows", "clock")

LIST = "/v1/swarms"


def spend(client, count: int, path: str = LIST, **extra) -> list:
    responses = [client.get(path, **extra) for _ in range(count)]
    assert [r.status_code for r in responses] == [200] * count, responses[-1].content
    return responses


def test_the_eleventh_request_of_a_minute_on_free_is_429_naming_the_request_limit(
    key_client, workspace
):
    client, _key, _raw = key_client(workspace)
    responses = spend(client, 10)
    assert [limit_headers(r) for r in responses] == [
        (10, remaining, WINDOW_END) for remaining in range(9, -1, -1)
    ]
    response = client.get(LIST)
    error = assert_v1_error(response, 429, "rate_limited")
    assert error["message"] == (
        "Rate limit of 10 requests per minute exceeded for this API key (plan free)."
    )
    assert "requests" in error["message"]
    assert error["details"] == {"limit": "requests_per_minute", "plan": "free", "allowed": 10}
    assert limit_headers(response) == (10, 0, WINDOW_END)
    assert int(response["Retry-After"]) == WINDOW_END - FROZEN_NOW == 50
    assert 1 <= int(response["Retry-After"]) <= 60


def test_management_api_429_is_a_problem_with_the_headers(api_client, workspace):
    spend(api_client, 10, "/api/workspaces")
    response = api_client.get("/api/workspaces")
    body = assert_problem(response, 429, "rate_limited")
    assert body["detail"] == (
        "Rate limit of 10 requests per minute exceeded for this user (plan free)."
    )
    assert limit_headers(response) == (10, 0, WINDOW_END)
    assert response["Retry-After"] == "50"


def test_error_responses_carry_the_headers_too(key_client, workspace):
    client, _key, _raw = key_client(workspace)
    not_found = client.get("/v1/swarms/run_00000000000000000000000000")
    assert_v1_error(not_found, 404, "not_found")
    assert limit_headers(not_found) == (10, 9, WINDOW_END)
    bad = client.post(LIST, {"task": "no template"}, format="json")
    assert_v1_error(bad, 400, "invalid_request")
    assert limit_headers(bad) == (10, 8, WINDOW_END)
    problem = client.get("/api/workspaces/wsp_00000000000000000000000000")
    assert_problem(problem, 404, "not_found")
    assert limit_headers(problem) == (10, 7, WINDOW_END)
    viewer, _key, _raw = key_client(workspace, role=Role.VIEWER)
    forbidden = viewer.post(LIST, {"template": "research-swarm-v1", "task": "x"}, format="json")
    assert_v1_error(forbidden, 403, "forbidden")
    assert limit_headers(forbidden) == (10, 9, WINDOW_END)


def test_a_pro_workspace_key_gets_60(key_client, workspace):
    workspace.plan = Plan.PRO
    workspace.save(update_fields=["plan"])
    client, _key, _raw = key_client(workspace)
    responses = spend(client, 60)
    assert limit_headers(responses[0]) == (60, 59, WINDOW_END)
    assert limit_headers(responses[-1]) == (60, 0, WINDOW_END)
    response = client.get(LIST)
    error = assert_v1_error(response, 429, "rate_limited")
    assert error["message"] == (
        "Rate limit of 60 requests per minute exceeded for this API key (plan pro)."
    )


def test_a_team_workspace_key_gets_300(key_client, workspace):
    workspace.plan = Plan.TEAM
    workspace.save(update_fields=["plan"])
    client, _key, _raw = key_client(workspace)
    assert limit_headers(client.get(LIST)) == (300, 299, WINDOW_END)


def test_each_api_key_has_its_own_budget(key_client, workspace):
    first, _key, _raw = key_client(workspace)
    second, _key, _raw = key_client(workspace)
    spend(first, 10)
    assert first.get(LIST).status_code == 429
    assert limit_headers(spend(second, 10)[-1]) == (10, 0, WINDOW_END)
    assert second.get(LIST).status_code == 429


def test_workspaces_are_isolated(key_client, workspace, other_workspace):
    mine, _key, _raw = key_client(workspace)
    theirs, _key, _raw = key_client(other_workspace)
    spend(mine, 10)
    assert mine.get(LIST).status_code == 429
    assert limit_headers(theirs.get(LIST)) == (10, 9, WINDOW_END)


def test_jwt_users_are_limited_per_user(api_client, user, workspace, member_of, other_workspace):
    colleague = jwt_client(member_of(workspace, Role.VIEWER))
    spend(api_client, 10)
    assert api_client.get(LIST).status_code == 429
    # The same workspace, another user: a budget of its own.
    assert limit_headers(colleague.get(LIST)) == (10, 9, WINDOW_END)
    # The same user in another workspace: still the one per-user budget.
    Membership.objects.create(workspace=other_workspace, user=user, role=Role.VIEWER)
    response = api_client.get(LIST, HTTP_SVERM_WORKSPACE=other_workspace.pk)
    assert_v1_error(response, 429, "rate_limited")


def test_a_jwt_is_limited_by_the_plan_of_its_v1_workspace(user, make_user):
    free = workspace_create(name="Free first", owner=user)
    pro = workspace_create(name="Pro second", owner=user, plan=Plan.PRO)
    client = jwt_client(user)
    # No header: the oldest membership's plan.
    assert limit_headers(client.get(LIST)) == (10, 9, WINDOW_END)
    # The Sverm-Workspace header chooses the workspace, and with it the plan.
    assert limit_headers(client.get(LIST, HTTP_SVERM_WORKSPACE=pro.pk)) == (60, 58, WINDOW_END)
    assert limit_headers(client.get(LIST, HTTP_SVERM_WORKSPACE=free.pk)) == (10, 7, WINDOW_END)
    # A workspace the user is not in does not choose the plan (and the call is 404).
    stranger = workspace_create(name="Team", owner=make_user(), plan=Plan.TEAM)
    response = client.get(LIST, HTTP_SVERM_WORKSPACE=stranger.pk)
    assert_v1_error(response, 404, "not_found")
    assert limit_headers(response) == (10, 6, WINDOW_END)


def test_a_user_without_a_workspace_is_on_free(make_user):
    client = jwt_client(make_user())
    response = client.get("/api/workspaces")
    assert response.status_code == 200
    assert limit_headers(response) == (10, 9, WINDOW_END)


def test_staff_are_limited_like_anyone(make_user, other_workspace):
    staff = jwt_client(make_user(is_staff=True))
    spend(staff, 10, "/api/workspaces")
    assert_problem(staff.get("/api/workspaces"), 429, "rate_limited")


def test_the_window_resets_at_the_next_minute(key_client, workspace, clock):
    client, _key, _raw = key_client(workspace)
    spend(client, 10)
    clock.now = WINDOW_END - 0.5
    response = client.get(LIST)
    assert response.status_code == 429
    assert response["Retry-After"] == "1"
    clock.now = WINDOW_END
    response = client.get(LIST)
    assert response.status_code == 200
    assert limit_headers(response) == (10, 9, WINDOW_END + 60)


def test_changing_a_plans_limits_applies_at_once(key_client, workspace, plan_rows):
    client, _key, _raw = key_client(workspace)
    assert limit_headers(client.get(LIST)) == (10, 9, WINDOW_END)  # now cached
    plan_limits_update(plan_limits=plan_rows[Plan.FREE], data={"requests_per_minute": 3})
    assert limit_headers(client.get(LIST)) == (3, 1, WINDOW_END)
    assert limit_headers(client.get(LIST)) == (3, 0, WINDOW_END)
    error = assert_v1_error(client.get(LIST), 429, "rate_limited")
    assert error["message"].startswith("Rate limit of 3 requests per minute")


def test_a_missing_plan_row_falls_back_to_seed_002(key_client, workspace):
    PlanLimits.objects.all().delete()
    client, _key, _raw = key_client(workspace)
    assert limit_headers(client.get(LIST)) == (10, 9, WINDOW_END)


def test_unauthenticated_and_open_views_count_per_ip_not_against_the_key(
    anon_client, key_client, workspace, settings
):
    unauthenticated = anon_client.get(LIST)
    assert_v1_error(unauthenticated, 401, "unauthorized")
    assert limit_headers(unauthenticated) == (settings.SVERM_ANON_RATE, 59, WINDOW_END)
    assert limit_headers(anon_client.get("/healthz"))[0] == settings.SVERM_PROBE_RATE
    client, _key, _raw = key_client(workspace)
    # The schema is open to anyone: a credential on it counts per IP, not against the key.
    schema = client.get("/openapi.json")
    assert schema.status_code == 200
    assert limit_headers(schema) == (settings.SVERM_ANON_RATE, 58, WINDOW_END)
    assert limit_headers(client.get(LIST)) == (10, 9, WINDOW_END)


def queries(client, path: str = LIST, **extra) -> int:
    with CaptureQueriesContext(connection) as captured:
        assert client.get(path, **extra).status_code == 200
    return len(captured)


def test_the_limit_costs_no_query_for_a_key_and_one_for_a_jwt(
    key_client, api_client, workspace, settings
):
    client, _key, _raw = key_client(workspace)
    settings.SVERM_RATE_LIMITS = False
    queries(client)  # the key's first use also records last_used_at
    key_off, jwt_off = queries(client), queries(api_client)
    settings.SVERM_RATE_LIMITS = True
    queries(client)  # the plan's limits are cached from here on
    assert queries(client) == key_off
    assert queries(api_client) == jwt_off + 1  # the /v1 workspace's plan


def test_switched_off_nothing_is_counted(key_client, workspace, settings):
    settings.SVERM_RATE_LIMITS = False
    client, _key, _raw = key_client(workspace)
    responses = spend(client, 12)
    assert not any(has_limit_headers(r) for r in responses)


def test_the_auth_ip_limit_still_applies(anon_client, user):
    payload = {"email": user.email, "password": "wrong"}
    statuses = [
        anon_client.post("/api/auth/login", payload, format="json").status_code for _ in range(20)
    ]
    assert statuses == [401] * 20
    response = anon_client.post("/api/auth/login", payload, format="json")
    assert_problem(response, 429, "rate_limited")
    assert int(response["Retry-After"]) == WINDOW_END - FROZEN_NOW
    assert limit_headers(response) == (20, 0, WINDOW_END)
    ok = anon_client.post(
        "/api/auth/login", {"email": user.email, "password": PASSWORD}, format="json",
        REMOTE_ADDR="10.0.0.9",
    )  # fmt: skip
    assert ok.status_code == 200


# ---------------------------------------------------------------------------------------------
# The admin: an operator edits the plans' limits and moves a workspace to another plan
# ---------------------------------------------------------------------------------------------
@pytest.fixture
def admin_client(make_user) -> Client:
    client = Client()
    client.force_login(make_user(email="ops@example.com", is_staff=True, is_superuser=True))
    return client


def test_plan_limits_are_listed_and_edited_in_place_in_the_admin(
    admin_client, key_client, workspace
):
    client, _key, _raw = key_client(workspace)
    assert limit_headers(client.get(LIST)) == (10, 9, WINDOW_END)  # now cached
    url = reverse("admin:accounts_planlimits_changelist")
    page = admin_client.get(url)
    assert page.status_code == 200
    formset = page.context["cl"].formset
    assert [form.instance.pk for form in formset.forms] == ["free", "pro", "team"]
    data = {
        f"{formset.prefix}-TOTAL_FORMS": str(len(formset.forms)),
        f"{formset.prefix}-INITIAL_FORMS": str(len(formset.forms)),
        "_save": "Save",
    }
    for index, form in enumerate(formset.forms):
        row = form.instance
        data[f"{formset.prefix}-{index}-plan"] = row.pk
        data[f"{formset.prefix}-{index}-requests_per_minute"] = row.requests_per_minute
        data[f"{formset.prefix}-{index}-concurrent_runs"] = row.concurrent_runs
        data[f"{formset.prefix}-{index}-runs_per_day"] = row.runs_per_day or ""
        data[f"{formset.prefix}-{index}-batches_per_hour"] = row.batches_per_hour
        data[f"{formset.prefix}-{index}-audit_retention_days"] = row.audit_retention_days
    data[f"{formset.prefix}-0-requests_per_minute"] = "2"
    response = admin_client.post(url, data)
    assert response.status_code == 302, response.content[:2000]
    assert PlanLimits.objects.get(pk="free").requests_per_minute == 2
    assert PlanLimits.objects.get(pk="team").runs_per_day is None
    assert limit_headers(client.get(LIST)) == (2, 0, WINDOW_END)
    assert client.get(LIST).status_code == 429
    # Rows are edited, never deleted.
    delete = admin_client.get(reverse("admin:accounts_planlimits_delete", args=["free"]))
    assert delete.status_code == 403


def test_moving_a_workspace_to_pro_in_the_admin_raises_its_limit(
    admin_client, key_client, user, workspace
):
    client, _key, _raw = key_client(workspace)
    spend(client, 10)
    assert client.get(LIST).status_code == 429
    membership = Membership.objects.get(workspace=workspace)
    response = admin_client.post(
        reverse("admin:accounts_workspace_change", args=[workspace.pk]),
        {
            "name": workspace.name,
            "plan": "pro",
            "memberships-TOTAL_FORMS": "1",
            "memberships-INITIAL_FORMS": "1",
            "memberships-MIN_NUM_FORMS": "0",
            "memberships-MAX_NUM_FORMS": "1000",
            "memberships-0-id": membership.pk,
            "memberships-0-workspace": workspace.pk,
            "memberships-0-user": user.pk,
            "memberships-0-role": "admin",
        },
    )
    assert response.status_code == 302, response.content[:2000]
    # The same window's count goes on, against the new plan's limit.
    assert limit_headers(client.get(LIST)) == (60, 48, WINDOW_END)
