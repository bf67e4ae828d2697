"""Writes for accounts: login, workspaces, memberships, API keys, plan limits and run quotas,
bootstrap."""

import hashlib
import hmac
import math
import secrets
import string
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.contrib.auth import authenticate
from django.db import IntegrityError, transaction
from django.db.models import Q, QuerySet
from django.utils import timezone
from rest_framework.exceptions import AuthenticationFailed
from rest_framework_simplejwt.exceptions import InvalidToken, TokenError
from rest_framework_simplejwt.serializers import TokenRefreshSerializer
from rest_framework_simplejwt.tokens import RefreshToken

from accounts.models import (
    ApiKey,
    ApiKeyStatus,
    Integration,
    Membership,
    Plan,
    PlanLimits,
    User,
    Workspace,
)
from accounts.roles import Role
from accounts.selectors import plan_limits, plan_limits_forget, user_get_by_email
from audit.services import audit_diff, audit_fields, audit_record
from sverm.api.errors import Conflict, Forbidden, InvalidRequest, RateLimited, Unauthorized
from sverm.services import model_update

API_KEY_PREFIX = "sk-sverm-"
_API_KEY_ALPHABET = string.ascii_letters + string.digits
_API_KEY_SECRET_LENGTH = 40
_API_KEY_LOOKUP_LENGTH = 8
# last_used_at is written at most once per this interval per key, not on every request.
API_KEY_TOUCH_INTERVAL = timedelta(seconds=60)
# How far ahead a key's expiry may be set, and how long a rotated key may stay valid beside its
# replacement (by default a day: time to roll the new key out).
API_KEY_MAX_LIFETIME = timedelta(days=3650)
API_KEY_MAX_OVERLAP = timedelta(days=30)
API_KEY_DEFAULT_OVERLAP = timedelta(hours=24)


# ---------------------------------------------------------------------------------------------
# Login
# ---------------------------------------------------------------------------------------------
def auth_login(*, email: str, password: str) -> dict[str, str]:
    user = authenticate(username=email.strip().lower(), password=password)
    if user is None:
        raise Unauthorized("Invalid email or password.")
    refresh = RefreshToken.for_user(user)
    User.objects.filter(pk=user.pk).update(last_login=timezone.now())
    return {"token": str(refresh.access_token), "refresh": str(refresh)}


def auth_refresh(*, refresh: str) -> dict[str, str]:
    serializer = TokenRefreshSerializer(data={"refresh": refresh})
    try:
        serializer.is_valid(raise_exception=True)
    except (TokenError, InvalidToken, AuthenticationFailed):
        raise Unauthorized("The refresh token is invalid or expired; log in again.") from None
    return {"token": serializer.validated_data["access"]}


# ---------------------------------------------------------------------------------------------
# Workspaces and members
# ---------------------------------------------------------------------------------------------
# A workspace's fields its audit events show; `plan` changes are events of their own.
WORKSPACE_AUDITED = ("name", "plan", "allowed_tools")


@transaction.atomic
def workspace_create(*, name: str, owner: User, plan: str = Plan.FREE) -> Workspace:
    workspace = Workspace.objects.create(name=name, plan=plan)
    membership = Membership.objects.create(workspace=workspace, user=owner, role=Role.ADMIN)
    audit_record(
        action="workspace.create", workspace_id=workspace.pk, target_type="workspace",
        target_id=workspace.pk, after=audit_fields(workspace, WORKSPACE_AUDITED),
    )  # fmt: skip
    _member_audit("member.add", membership, after={"role": membership.role})
    return workspace


def workspace_plan_check(*, plan: str, current: str = Plan.FREE, by_staff: bool) -> None:
    """A plan sets what a workspace may run and spend, so only platform staff choose it; anyone
    may name the plan a workspace already has (`free` for a new one). 403 otherwise."""
    if plan != current and not by_staff:
        raise Forbidden(
            f"Only platform staff may set a workspace's plan; ask them for {plan!r}."
            if current == Plan.FREE
            else f"Only platform staff may change this workspace's plan ({current!r})."
        )


@transaction.atomic
def workspace_update(*, workspace: Workspace, data: dict) -> Workspace:
    """`data` keys: name, plan, allowed_tools. Recorded as `workspace.update`, and a plan change
    as `workspace.plan_change` of its own."""
    allowed = {key: value for key, value in data.items() if key in WORKSPACE_AUDITED}
    before = audit_fields(workspace, WORKSPACE_AUDITED)
    workspace, changed = model_update(instance=workspace, data=allowed)
    if changed:
        old, new = audit_diff(before, audit_fields(workspace, WORKSPACE_AUDITED))
        if "plan" in new:
            audit_record(
                action="workspace.plan_change", workspace_id=workspace.pk,
                target_type="workspace", target_id=workspace.pk,
                before={"plan": old.pop("plan")}, after={"plan": new.pop("plan")},
            )  # fmt: skip
        if new:
            audit_record(action="workspace.update", workspace_id=workspace.pk,
                         target_type="workspace", target_id=workspace.pk, before=old,
                         after=new)  # fmt: skip
    return workspace


def _member_audit(action: str, membership: Membership, *, before=None, after=None) -> None:
    """A membership's event: its target is the membership, its values name the user."""
    who = {"user_id": membership.user_id, "email": membership.user.email}
    audit_record(
        action=action, workspace_id=membership.workspace_id, target_type="member",
        target_id=membership.pk, before=None if before is None else {**who, **before},
        after=None if after is None else {**who, **after},
    )  # fmt: skip


def _ensure_an_admin_remains(*, membership: Membership, new_role: str | None) -> None:
    if membership.role != Role.ADMIN or new_role == Role.ADMIN:
        return
    admins = Membership.objects.select_for_update().filter(
        workspace_id=membership.workspace_id, role=Role.ADMIN
    )
    if admins.count() <= 1:
        raise Conflict("A workspace needs at least one admin; promote another member first.")


def membership_add(*, workspace: Workspace, email: str, role: str) -> Membership:
    user = user_get_by_email(email=email)
    if user is None:
        raise InvalidRequest.for_field(
            "email",
            "No user has this email address.",
            code="does_not_exist",
            message="No user has this email address; an operator creates users in the admin.",
        )
    try:
        with transaction.atomic():
            membership = Membership.objects.create(workspace=workspace, user=user, role=role)
            _member_audit("member.add", membership, after={"role": role})
            return membership
    except IntegrityError:
        raise Conflict(f"{user.email} is already a member of this workspace.") from None


@transaction.atomic
def membership_update_role(*, membership: Membership, role: str) -> Membership:
    _ensure_an_admin_remains(membership=membership, new_role=role)
    old_role = membership.role
    membership, changed = model_update(instance=membership, data={"role": role})
    if changed:
        _member_audit(
            "member.role_change", membership, before={"role": old_role}, after={"role": role}
        )
    return membership


@transaction.atomic
def membership_remove(*, membership: Membership) -> None:
    _ensure_an_admin_remains(membership=membership, new_role=None)
    _member_audit("member.remove", membership, before={"role": membership.role})
    membership.delete()


# ---------------------------------------------------------------------------------------------
# Integrations
# ---------------------------------------------------------------------------------------------
def integration_install(*, installer: Workspace, publisher: Workspace, installed_by: User):
    if installer.pk == publisher.pk:
        raise InvalidRequest.for_field(
            "publisherWorkspaceId",
            "Must be another workspace.",
            message="A workspace cannot install itself.",
        )
    try:
        with transaction.atomic():
            integration = Integration.objects.create(
                installer=installer, publisher=publisher, installed_by=installed_by
            )
            audit_record(action="integration.install", workspace_id=installer.pk,
                         target_type="integration", target_id=integration.pk,
                         after={"publisher_id": publisher.pk})  # fmt: skip
            return integration
    except IntegrityError:
        raise Conflict("This integration is already installed.") from None


@transaction.atomic
def integration_remove(*, integration: Integration) -> None:
    audit_record(action="integration.remove", workspace_id=integration.installer_id,
                 target_type="integration", target_id=integration.pk,
                 before={"publisher_id": integration.publisher_id})  # fmt: skip
    integration.delete()


# ---------------------------------------------------------------------------------------------
# API keys
# ---------------------------------------------------------------------------------------------
def api_key_digest(raw_key: str) -> str:
    """What a key is stored and looked up by (`ApiKey.hashed_key`)."""
    # Keys carry ~238 bits of randomness, so a fast hash is safe; no salt or KDF is needed.
    return hashlib.sha256(raw_key.encode()).hexdigest()


@transaction.atomic
def api_key_create(
    *,
    workspace: Workspace,
    name: str,
    role: str,
    created_by: User,
    expires_at: datetime | None = None,
) -> tuple[ApiKey, str]:
    """Returns the key and its raw secret; the secret is never stored and cannot be shown again.
    `expires_at` (None: never) is checked by the input serializers (future, within
    API_KEY_MAX_LIFETIME)."""
    api_key, raw_key = _api_key_make(
        workspace_id=workspace.pk, name=name, role=role, created_by=created_by,
        expires_at=expires_at,
    )  # fmt: skip
    after = {"name": name, "role": role, "prefix": api_key.prefix}
    if expires_at is not None:
        after["expires_at"] = expires_at
    audit_record(action="api_key.create", workspace_id=workspace.pk, target_type="api_key",
                 target_id=api_key.pk, after=after)  # fmt: skip
    return api_key, raw_key


def _api_key_make(
    *,
    workspace_id: str,
    name: str,
    role: str,
    created_by: User,
    expires_at: datetime | None,
    replaces: ApiKey | None = None,
) -> tuple[ApiKey, str]:
    secret = "".join(secrets.choice(_API_KEY_ALPHABET) for _ in range(_API_KEY_SECRET_LENGTH))
    raw_key = API_KEY_PREFIX + secret
    api_key = ApiKey.objects.create(
        workspace_id=workspace_id,
        name=name,
        role=role,
        prefix=raw_key[: len(API_KEY_PREFIX) + _API_KEY_LOOKUP_LENGTH],
        hashed_key=api_key_digest(raw_key),
        created_by=created_by,
        expires_at=expires_at,
        replaces=replaces,
    )
    return api_key, raw_key


def api_key_authenticate(*, raw_key: str) -> ApiKey:
    """The key a raw `sk-sverm-…` secret is, if it authenticates now (ApiKey.status_at: not
    revoked, not expired) and its owner is active; Unauthorized otherwise. The one check of
    every path that takes a key: DRF's authentication, the WebSocket middleware (both through
    `credential_authenticate`) and the fast status reads (swarms/fast_reads.py). Keeps
    `last_used_at` current to within API_KEY_TOUCH_INTERVAL."""
    secret = raw_key.removeprefix(API_KEY_PREFIX)
    # Not one of ours (a NUL, which the database would refuse to compare, or any other stray
    # character): no lookup.
    if not secret or secret.strip(_API_KEY_ALPHABET):
        raise Unauthorized("Invalid API key.")
    prefix = raw_key[: len(API_KEY_PREFIX) + _API_KEY_LOOKUP_LENGTH]
    digest = api_key_digest(raw_key)
    match = None
    for candidate in ApiKey.objects.select_related("created_by", "workspace").filter(prefix=prefix):
        if hmac.compare_digest(candidate.hashed_key, digest):
            match = candidate
    if match is None:
        raise Unauthorized("Invalid API key.")
    # Past this point the caller holds the whole secret, so naming why it is refused tells them
    # nothing they could not know; an unknown or tampered key is only ever "Invalid API key."
    now = timezone.now()
    status = match.status_at(now)
    if status == ApiKeyStatus.REVOKED:
        raise Unauthorized("This API key has been revoked.")
    if status == ApiKeyStatus.EXPIRED:
        raise Unauthorized("This API key has expired; use its replacement or create a new one.")
    if not match.created_by.is_active:
        raise Unauthorized("This API key's owner is deactivated.")
    api_key_touch(api_key=match, now=now)
    return match


def api_key_touch(*, api_key: ApiKey, now: datetime) -> None:
    """Record that the key was used at `now`, at most once per API_KEY_TOUCH_INTERVAL: no write
    when this copy of the key was used that recently, and a conditional UPDATE otherwise, so
    concurrent requests through other processes write once between them."""
    stale = now - API_KEY_TOUCH_INTERVAL
    if api_key.last_used_at is not None and api_key.last_used_at > stale:
        return
    # A queryset update: no post_save, so the fast reads keep the key they hold in memory.
    ApiKey.objects.filter(pk=api_key.pk).filter(
        Q(last_used_at__isnull=True) | Q(last_used_at__lte=stale)
    ).update(last_used_at=now)
    api_key.last_used_at = now


def api_key_rotate(
    *,
    api_key: ApiKey,
    overlap_until: datetime,
    created_by: User,
    expires_at: datetime | None = None,
) -> tuple[ApiKey, str]:
    """A new key with the old one's name, role and workspace that `replaces` it, returned with
    its raw secret; the old key keeps working until `overlap_until` (or its own earlier expiry,
    which is never extended). Conflict when the old key no longer authenticates or was already
    rotated (of two rotations at once, one wins and the other is this conflict). Recorded as one
    `api_key.rotate` event of the old key, naming the new one."""
    with transaction.atomic():
        # Locked: two rotations at once make one new key.
        old = ApiKey.objects.select_for_update().get(pk=api_key.pk)
        status = old.status_at()
        if status != ApiKeyStatus.ACTIVE:
            raise Conflict(
                f"This API key is {status}: only an active key can be rotated; create a new key.",
                details={"keyStatus": status},
            )
        replacement = ApiKey.objects.filter(replaces=old).values_list("pk", flat=True).first()
        if replacement is not None:
            raise Conflict(
                f"This API key was already rotated to {replacement}; rotate that key instead.",
                details={"replacedBy": replacement},
            )
        new, raw_key = _api_key_make(
            workspace_id=old.workspace_id, name=old.name, role=old.role, created_by=created_by,
            expires_at=expires_at, replaces=old,
        )  # fmt: skip
        before = old.expires_at
        if before is None or overlap_until < before:
            old.expires_at = overlap_until
            old.save(update_fields=["expires_at"])
        after = {"expires_at": old.expires_at, "replaced_by_id": new.pk,
                 "replaced_by_prefix": new.prefix}  # fmt: skip
        if expires_at is not None:
            after["replaced_by_expires_at"] = expires_at
        audit_record(action="api_key.rotate", workspace_id=old.workspace_id,
                     target_type="api_key", target_id=old.pk, before={"expires_at": before},
                     after=after)  # fmt: skip
    api_key.expires_at = old.expires_at
    return new, raw_key


@transaction.atomic
def api_key_revoke(*, api_key: ApiKey) -> ApiKey:
    """Idempotent: revoking a revoked key keeps its first revocation time (and records
    nothing)."""
    # Locked: two revocations at once record one event.
    revoked_at = (
        ApiKey.objects.select_for_update().values_list("revoked_at", flat=True).get(pk=api_key.pk)
    )
    api_key.revoked_at = revoked_at
    if revoked_at is None:
        api_key.revoked_at = timezone.now()
        api_key.save(update_fields=["revoked_at"])
        audit_record(action="api_key.revoke", workspace_id=api_key.workspace_id,
                     target_type="api_key", target_id=api_key.pk,
                     before={"revoked_at": None},
                     after={"revoked_at": api_key.revoked_at})  # fmt: skip
    return api_key


# ---------------------------------------------------------------------------------------------
# Plans: their limits, and the run quotas they set
# ---------------------------------------------------------------------------------------------
# A full workspace is told to retry after this long: runs usually finish within seconds.
CONCURRENT_RUNS_RETRY_AFTER_SECONDS = 5


PLAN_LIMITS_AUDITED = ("requests_per_minute", "concurrent_runs", "runs_per_day")


@transaction.atomic
def plan_limits_update(*, plan_limits: PlanLimits, data: dict) -> PlanLimits:
    allowed = {key: value for key, value in data.items() if key in PLAN_LIMITS_AUDITED}
    before = audit_fields(plan_limits, PLAN_LIMITS_AUDITED)
    plan_limits, changed = model_update(instance=plan_limits, data=allowed)
    if changed:
        plan_limits_forget(plan=plan_limits.pk)
        old, new = audit_diff(before, audit_fields(plan_limits, PLAN_LIMITS_AUDITED))
        audit_record(action="plan_limits.update", workspace_id=None, target_type="plan_limits",
                     target_id=plan_limits.pk, before=old, after=new)  # fmt: skip
    return plan_limits


def quota_clock() -> datetime:
    """Now, for the daily quota (a function so tests can move the day)."""
    return timezone.now()


def workspace_quota_lock(*, workspace_id: str) -> str:
    """Lock the workspace row for a quota check (`FOR NO KEY UPDATE`, until the transaction
    commits: see workspace_run_quota_check) and return its plan."""
    return (
        Workspace.objects.select_for_update(no_key=True)
        .filter(pk=workspace_id)
        .values_list("plan", flat=True)
        .get()
    )


def workspace_run_quota_check(
    *, workspace_id: str, runs: QuerySet, active_statuses: Iterable[str]
) -> None:
    """Refuse a new run (429 `rate_limited`) when the workspace's plan allows no more today or
    none more at once. Call it inside the transaction that creates the run: the workspace row
    stays locked until that commits, so two concurrent creations cannot both take the last slot.

    The lock is `FOR NO KEY UPDATE`: it excludes other creations (and plan changes) but not the
    `FOR KEY SHARE` that PostgreSQL's foreign-key checks take on the workspace row when a worker
    writes ledger and rollup rows. With `FOR UPDATE`, a worker holding the month's rollup row and
    checking its ledger row's key waited for a creation that waited for that rollup row: a
    deadlock, and a 500. Lock order (swarms/services/runs.py): quota lock, run row, its steps
    and events, rollup row; the key checks wait for nothing but a workspace's deletion.

    `runs` are the workspace's runs in the database (with `status` and `created_at`). Counting
    rows rather than keeping a cache counter leaves nothing to leak: a slot is free as soon as
    its run's row leaves queued/running (a run a dead worker left `running` counts until it is
    failed or cancelled). The daily limit is checked first: waiting for a run does not lift it.
    `SVERM_RATE_LIMITS` off turns the quotas off with the request limit.
    """
    if not settings.SVERM_RATE_LIMITS:
        return
    plan = workspace_quota_lock(workspace_id=workspace_id)
    limits = plan_limits(plan=plan)
    if limits.runs_per_day is not None:
        now = quota_clock()
        midnight = now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
        if runs.filter(created_at__gte=midnight).count() >= limits.runs_per_day:
            wait = math.ceil((midnight + timedelta(days=1) - now).total_seconds())
            raise RateLimited(
                f"Daily runs limit of {limits.runs_per_day} reached (plan {plan}); "
                "resets at 00:00 UTC.",
                details={"limit": "runs_per_day", "plan": plan, "allowed": limits.runs_per_day},
                headers={"Retry-After": str(max(wait, 1))},
            )
    if runs.filter(status__in=list(active_statuses)).count() >= limits.concurrent_runs:
        raise RateLimited(
            f"Concurrent runs limit of {limits.concurrent_runs} reached (plan {plan}); "
            "wait for a run to finish.",
            details={"limit": "concurrent_runs", "plan": plan, "allowed": limits.concurrent_runs},
            headers={"Retry-After": str(CONCURRENT_RUNS_RETRY_AFTER_SECONDS)},
        )


# ---------------------------------------------------------------------------------------------
# Bootstrap
# ---------------------------------------------------------------------------------------------
BOOTSTRAP_KEY_NAME = "bootstrap"


@dataclass(frozen=True)
class BootstrapResult:
    user: User
    workspace: Workspace
    user_created: bool
    generated_password: str | None
    api_key: ApiKey
    raw_api_key: str | None  # None when the existing key was kept


@transaction.atomic
def platform_bootstrap(
    *,
    email: str,
    password: str | None,
    workspace_name: str = "Default",
    plan: str | None = None,
    rotate_key: bool = False,
) -> BootstrapResult:
    """Idempotent first-run setup: a superuser, a workspace it administers, and an API key.

    Re-running keeps what exists: the password is set only when given, and a new API key is
    made only when none is active or `rotate_key` is asked for.
    """
    email = email.strip().lower()
    user = user_get_by_email(email=email)
    generated = None
    created = user is None
    if created:
        if not password:
            generated = password = secrets.token_urlsafe(16)
        user = User.objects.create_superuser(email=email, password=password)
    else:
        changed = []
        if password and not user.check_password(password):
            user.set_password(password)
            changed.append("password")
        for flag in ("is_staff", "is_superuser", "is_active"):
            if not getattr(user, flag):
                setattr(user, flag, True)
                changed.append(flag)
        if changed:
            user.save(update_fields=changed)

    membership = (
        Membership.objects.select_related("workspace")
        .filter(user=user, role=Role.ADMIN, workspace__name=workspace_name)
        .order_by("created_at")
        .first()
    )
    if membership is None:
        workspace = workspace_create(name=workspace_name, owner=user, plan=plan or Plan.FREE)
    else:
        workspace = membership.workspace
        if plan:
            workspace = workspace_update(workspace=workspace, data={"plan": plan})

    keys = (
        ApiKey.objects.usable()
        .filter(workspace=workspace, name=BOOTSTRAP_KEY_NAME)
        .order_by("created_at")
    )
    existing = keys.first()
    raw_key = None
    if existing is None or rotate_key:
        for key in keys:
            api_key_revoke(api_key=key)
        existing, raw_key = api_key_create(
            workspace=workspace, name=BOOTSTRAP_KEY_NAME, role=Role.ADMIN, created_by=user
        )
    return BootstrapResult(
        user=user,
        workspace=workspace,
        user_created=created,
        generated_password=generated,
        api_key=existing,
        raw_api_key=raw_key,
    )
