"""Reads for accounts: memberships and roles."""

from accounts.models import Membership, User


def user_workspace_roles(*, user_id: str) -> dict[str, str]:
    """Workspace id -> role, oldest membership first (the /v1 default workspace)."""
    memberships = Membership.objects.filter(user_id=user_id).order_by("created_at", "id")
    return dict(memberships.values_list("workspace_id", "role"))


def user_get_by_email(*, email: str) -> User | None:
    return User.objects.filter(email__iexact=email.strip()).first()
