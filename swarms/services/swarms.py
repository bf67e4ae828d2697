"""Swarm writes: create with version 1, update, versions, soft delete, restore, purge."""

from django.db import transaction
from django.db.models import Max
from django.utils import timezone

from accounts.models import Membership, User, Workspace
from audit.services import audit_diff, audit_fields, audit_record
from sverm.api.errors import Conflict, InvalidRequest
from sverm.services import model_update
from swarms.definitions import default_definition
from swarms.models import RetentionTier, Swarm, SwarmVersion
from swarms.providers import price_map


@transaction.atomic
def swarm_create(
    *,
    workspace: Workspace,
    name: str,
    created_by: User | None,
    description: str = "",
    instructions: str = "",
    models: list[str] | None = None,
    retention_tier: str = RetentionTier.STANDARD,
) -> Swarm:
    swarm = Swarm.objects.create(
        workspace=workspace,
        name=name,
        description=description,
        created_by=created_by,
        retention_tier=retention_tier,
    )
    version = _version_add(
        swarm=swarm, instructions=instructions, models=models or [], created_by=created_by
    )
    swarm.default_version = version
    swarm.save(update_fields=["default_version"])
    _swarm_audit("swarm.create", swarm, after=audit_fields(swarm, SWARM_AUDITED))
    return swarm


# A swarm's fields its audit events show; the default version's switch is an event of its own.
SWARM_AUDITED = ("name", "description", "retention_tier", "runtime_user", "default_version")


def _swarm_audit(action: str, swarm: Swarm, *, before=None, after=None) -> None:
    audit_record(action=action, workspace_id=swarm.workspace_id, target_type="swarm",
                 target_id=swarm.pk, before=before, after=after)  # fmt: skip


def _version_audit(version: SwarmVersion, swarm: Swarm) -> None:
    audit_record(
        action="swarm_version.create", workspace_id=swarm.workspace_id,
        target_type="swarm_version", target_id=version.pk,
        after={"swarm_id": swarm.pk, "number": version.number,
               "instructions": version.instructions, "models": version.model_names},
    )  # fmt: skip


def _check_models(models: list[str]) -> None:
    known = set(price_map())
    for index, model in enumerate(models):
        if model not in known:
            raise InvalidRequest.for_field(
                f"models[{index}]",
                f"unknown model {model!r}; known: {', '.join(sorted(known))}.",
                code="unknown_model",
            )


def _version_add(*, swarm: Swarm, instructions: str, models: list[str], created_by) -> SwarmVersion:
    _check_models(models)
    last = swarm.versions.aggregate(last=Max("number"))["last"] or 0
    return SwarmVersion.objects.create(
        swarm=swarm,
        number=last + 1,
        instructions=instructions,
        model_names=models,
        definition=default_definition(models=models, instructions=instructions),
        created_by=created_by,
    )


def _ensure_alive(swarm: Swarm) -> None:
    if swarm.deleted_at is not None:
        raise Conflict(f"Swarm {swarm.pk} is deleted; restore it first.")


@transaction.atomic
def swarm_version_create(
    *,
    swarm: Swarm,
    created_by: User | None,
    instructions: str | None = None,
    models: list[str] | None = None,
    set_default: bool = False,
) -> SwarmVersion:
    """A new version; omitted fields are carried over from the default version."""
    swarm = Swarm.objects.select_for_update().get(pk=swarm.pk)  # serialises version numbers
    _ensure_alive(swarm)
    base = swarm.default_version
    version = _version_add(
        swarm=swarm,
        instructions=instructions
        if instructions is not None
        else (base.instructions if base else ""),
        models=models if models is not None else (base.model_names if base else []),
        created_by=created_by,
    )
    _version_audit(version, swarm)
    if set_default and swarm.default_version_id != version.pk:
        previous = swarm.default_version_id
        swarm.default_version = version
        swarm.save(update_fields=["default_version", "updated_at"])
        _swarm_audit("swarm.default_version_switch", swarm,
                     before={"default_version_id": previous},
                     after={"default_version_id": version.pk})  # fmt: skip
    return version


@transaction.atomic
def swarm_update(*, swarm: Swarm, data: dict) -> Swarm:
    """`data` keys: name, description, runtime_user_id, default_version_id, retention_tier."""
    swarm = Swarm.objects.select_for_update().get(pk=swarm.pk)
    _ensure_alive(swarm)
    changes = {k: v for k, v in data.items() if k in {"name", "description", "retention_tier"}}
    if "runtime_user_id" in data:
        user_id = data["runtime_user_id"]
        if (
            user_id is not None
            and not Membership.objects.filter(
                workspace_id=swarm.workspace_id, user_id=user_id
            ).exists()
        ):
            raise InvalidRequest.for_field(
                "runtimeUserId", "Not a member of the swarm's workspace."
            )
        changes["runtime_user_id"] = user_id
    if "default_version_id" in data:
        version_id = data["default_version_id"]
        if not SwarmVersion.objects.filter(pk=version_id, swarm=swarm).exists():
            raise InvalidRequest.for_field("defaultVersionId", "Not a version of this swarm.")
        changes["default_version_id"] = version_id
    before = audit_fields(swarm, SWARM_AUDITED)
    swarm, changed = model_update(instance=swarm, data=changes)
    if changed:
        old, new = audit_diff(before, audit_fields(swarm, SWARM_AUDITED))
        if "default_version_id" in new:
            _swarm_audit("swarm.default_version_switch", swarm,
                         before={"default_version_id": old.pop("default_version_id")},
                         after={"default_version_id": new.pop("default_version_id")})  # fmt: skip
        if new:
            _swarm_audit("swarm.update", swarm, before=old, after=new)
    return swarm


@transaction.atomic
def swarm_soft_delete(*, swarm: Swarm) -> Swarm:
    """Idempotent: deleting a deleted swarm keeps its first deletion time (and records
    nothing)."""
    # Locked, so two deletions at once record one event; the caller's instance follows.
    locked = Swarm.objects.select_for_update().get(pk=swarm.pk)
    if locked.deleted_at is None:
        locked.deleted_at = timezone.now()
        locked.save(update_fields=["deleted_at", "updated_at"])
        _swarm_audit("swarm.delete", locked, before={"deleted_at": None},
                     after={"deleted_at": locked.deleted_at})  # fmt: skip
    swarm.deleted_at, swarm.updated_at = locked.deleted_at, locked.updated_at
    return swarm


@transaction.atomic
def swarm_restore(*, swarm: Swarm) -> Swarm:
    locked = Swarm.objects.select_for_update().get(pk=swarm.pk)
    if locked.deleted_at is None:
        raise Conflict(f"Swarm {swarm.pk} is not deleted.")
    deleted_at = locked.deleted_at
    locked.deleted_at = None
    locked.save(update_fields=["deleted_at", "updated_at"])
    _swarm_audit("swarm.restore", locked, before={"deleted_at": deleted_at},
                 after={"deleted_at": None})  # fmt: skip
    swarm.deleted_at, swarm.updated_at = None, locked.updated_at
    return swarm


@transaction.atomic
def swarm_purge(*, swarm: Swarm) -> None:
    """Removes a soft-deleted swarm and its versions for good. Billing records keep their own
    copies of what they need and do not reference the swarm, so they stay."""
    swarm = Swarm.objects.select_for_update().get(pk=swarm.pk)
    if swarm.deleted_at is None:
        raise Conflict(f"Swarm {swarm.pk} is not deleted; soft-delete it before purging.")
    before = {**audit_fields(swarm, SWARM_AUDITED), "deleted_at": swarm.deleted_at}
    swarm.default_version = None
    swarm.save(update_fields=["default_version"])
    _swarm_audit("swarm.purge", swarm, before=before)
    swarm.delete()
