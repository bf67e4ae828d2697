"""Engine tests: plain asyncio, no database (the engine has no Django in it)."""

import pytest


@pytest.fixture
def anyio_backend():
    return "asyncio"
