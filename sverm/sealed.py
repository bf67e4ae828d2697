"""Secrets sverm must read back (webhook signing secrets, MCP servers' credentials), stored
Fernet-encrypted under a key derived from SECRET_KEY and a purpose, so one purpose's key never
opens another's. SECRET_KEY_FALLBACKS still decrypt after SECRET_KEY is rotated."""

import base64
import hashlib

from cryptography.fernet import Fernet, MultiFernet
from django.conf import settings


def _fernet(purpose: str) -> MultiFernet:
    keys = [settings.SECRET_KEY, *getattr(settings, "SECRET_KEY_FALLBACKS", [])]
    return MultiFernet(
        [
            Fernet(base64.urlsafe_b64encode(hashlib.sha256(f"{purpose}:{k}".encode()).digest()))
            for k in keys
        ]
    )


def seal(purpose: str, secret: str) -> str:
    return _fernet(purpose).encrypt(secret.encode()).decode()


def unseal(purpose: str, token: str) -> str:
    """The secret; cryptography.fernet.InvalidToken when no key of `purpose` opens it."""
    return _fernet(purpose).decrypt(token.encode()).decode()
