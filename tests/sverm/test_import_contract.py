"""The layers pyproject.toml states ([tool.importlinter]) hold, and each contract breaks when one
of its arrows is reversed: the check `make lint` runs can fail."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def contracts_kept(*imports: str) -> dict[str, bool]:
    """Each contract's verdict on the code plus `imports` ("importer:imported")."""
    checked = subprocess.run(
        [sys.executable, "-m", "tests.import_contract", *imports],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert checked.returncode == 0, checked.stderr
    return json.loads(checked.stdout)


def test_the_code_keeps_every_contract():
    kept = contracts_kept()
    assert set(kept) == {
        "engine", "plumbing", "accounts", "tools", "billing", "swarms-acyclic", "ssrf-leaf",
        "audit",
    }  # fmt: skip
    assert all(kept.values()), [name for name, ok in kept.items() if not ok]


@pytest.mark.parametrize(
    ("reversed_import", "contract"),
    [
        ("swarms.engine.runner:sverm.money", "engine"),
        ("swarms.engine.budget:django.conf", "engine"),
        ("sverm.api.errors:accounts.models", "plumbing"),
        ("accounts.models:billing.models", "accounts"),
        ("billing.services:swarms.models", "billing"),
        ("swarms.models:swarms.views", "swarms-acyclic"),
        ("swarms.engine.types:swarms.engine.runner", "swarms-acyclic"),
        ("swarms.webhooks.ssrf:swarms.models", "ssrf-leaf"),
        ("tools.selectors:swarms.models", "tools"),
        ("sverm.ssrf:tools.fetch", "plumbing"),
        ("tools.fetch:templates_app.models", "tools"),
        ("audit.services:accounts.models", "audit"),
    ],
)
def test_a_reversed_arrow_breaks_its_contract(reversed_import, contract):
    kept = contracts_kept(reversed_import)
    assert kept[contract] is False
    broken = [name for name, ok in kept.items() if not ok]
    # The audit trail uses the plumbing (sverm.api), so an app imported there reaches it too.
    through_plumbing = contract == "plumbing" and reversed_import.startswith("sverm.api")
    also = {"audit"} if through_plumbing else set()
    assert set(broken) == {contract, *also}
