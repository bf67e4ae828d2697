"""Where the `sverm` CLI keeps its login: auth.json in a private config directory."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

FILE_NAME = "auth.json"


def config_dir() -> Path:
    """$SVERM_CONFIG_DIR, else $XDG_CONFIG_HOME/sverm, else ~/.config/sverm."""
    if override := os.environ.get("SVERM_CONFIG_DIR"):
        return Path(override).expanduser()
    xdg = os.environ.get("XDG_CONFIG_HOME")
    # The XDG spec says a relative value is invalid and must be ignored.
    base = Path(xdg) if xdg and os.path.isabs(xdg) else Path.home() / ".config"
    return base / "sverm"


def auth_path() -> Path:
    return config_dir() / FILE_NAME


@dataclass(frozen=True, slots=True)
class SavedAuth:
    """What `sverm login` saved. Credentials belong to `base_url` and are sent nowhere else."""

    base_url: str
    access: str | None = None
    refresh: str | None = None
    api_key: str | None = None
    workspace: str | None = None

    @property
    def has_credentials(self) -> bool:
        return bool(self.api_key or self.access or self.refresh)


def auth_load() -> SavedAuth | None:
    """The saved login, or None when there is none (or it is unreadable: log in again)."""
    try:
        data = json.loads(auth_path().read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or not isinstance(data.get("base_url"), str):
        return None
    fields = ("access", "refresh", "api_key", "workspace")
    return SavedAuth(
        base_url=data["base_url"],
        **{name: data[name] if isinstance(data.get(name), str) else None for name in fields},
    )


def auth_save(auth: SavedAuth) -> Path:
    """Write auth.json readable by its owner only (0600, in a 0700 directory), atomically: a
    temporary file made 0600 from its first byte, then renamed over the old one."""
    directory = config_dir()
    if not directory.exists():
        directory.mkdir(mode=0o700, parents=True)
        # mkdir's mode is filtered by the umask; say it again so it is exactly 0700.
        directory.chmod(0o700)
    fd, temporary = tempfile.mkstemp(prefix=".auth-", suffix=".json", dir=directory)
    try:
        os.fchmod(fd, 0o600)  # mkstemp already uses 0600; fchmod documents it and survives umask
        with os.fdopen(fd, "w", encoding="utf-8") as file:
            json.dump(asdict(auth), file, indent=2)
            file.write("\n")
            file.flush()
            os.fsync(file.fileno())
        path = directory / FILE_NAME
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
    return path


def auth_remove() -> bool:
    """Forget the saved login; whether there was one."""
    try:
        auth_path().unlink()
    except FileNotFoundError:
        return False
    return True
