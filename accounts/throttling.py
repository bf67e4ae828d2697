"""The plan's requests per minute (seed 002), counted per API key, or per user for a JWT.

The plan is the API key's workspace's, or for a JWT the plan of the workspace a `/v1` call
would act in (the `Sverm-Workspace` header, else the user's oldest membership; free without one).
Besides the counter (sverm/api/throttling.py) a request costs one cache read for the plan's
limits (cached 30 s; from the process's memory while Redis is unreachable, sverm/cache.py), plus
for a JWT one primary-key query for the workspace's plan (an API key's workspace is loaded with
the key).
"""

from accounts.models import ApiKey, Plan
from accounts.selectors import plan_limits, workspace_plan
from accounts.tenancy import caller_for
from sverm.api.throttling import MinuteQuota, PerMinuteRateThrottle


class PlanRateThrottle(PerMinuteRateThrottle):
    """Every authenticated request of a view that is not open to anyone counts against its
    plan's requests per minute."""

    def quota(self, request) -> MinuteQuota | None:
        auth = getattr(request, "auth", None)
        if isinstance(auth, ApiKey):
            return api_key_quota(auth)
        user = getattr(request, "user", None)
        if user is None or not user.is_authenticated:
            return None
        return _plan_quota(_jwt_plan(request), f"user:{user.pk}", "this user")


def api_key_quota(api_key: ApiKey) -> MinuteQuota:
    """An API key's requests count per key, against its workspace's plan."""
    return _plan_quota(api_key.workspace.plan, f"key:{api_key.pk}", "this API key")


def _plan_quota(plan: str, identity: str, who: str) -> MinuteQuota:
    return MinuteQuota(
        limit=plan_limits(plan=plan).requests_per_minute,
        identity=identity,
        subject=f"{who} (plan {plan})",
        details={"plan": plan},
    )


def _jwt_plan(request) -> str:
    caller = caller_for(request)
    requested = request.headers.get("Sverm-Workspace")
    if requested and caller.role_in(requested) is not None:
        return workspace_plan(workspace_id=requested)
    if caller.roles:
        return workspace_plan(workspace_id=next(iter(caller.roles)))
    return Plan.FREE
