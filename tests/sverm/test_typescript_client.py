"""The TypeScript client check (clients/typescript, `make test-typescript`) guards the schema.

Types generated from the real schema make `src/check.ts` type-check; a schema that breaks a
generated client (a request field removed, the run status enum changed) makes `tsc` fail there.
Each run works on a copy of the client in a temporary folder, its node_modules linked to
clients/typescript's (installed with `npm ci` when missing or stale).
"""

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from django.core.management import call_command

CLIENT = Path(__file__).resolve().parents[2] / "clients" / "typescript"


def _npm() -> str:
    npm = shutil.which("npm")
    if npm is None:
        if os.environ.get("CI") == "true":
            pytest.fail("npm is not installed and CI=true: the TypeScript client check cannot run")
        pytest.skip("npm is not installed")
    return npm


def _installed_matches_lock() -> bool:
    """node_modules holds exactly the versions package-lock.json pins."""
    installed = CLIENT / "node_modules" / ".package-lock.json"
    if not installed.exists():
        return False
    want = json.loads((CLIENT / "package-lock.json").read_text())["packages"]
    have = json.loads(installed.read_text())["packages"]
    return all(
        have.get(name, {}).get("version") == entry.get("version")
        for name, entry in want.items()
        if name
    )


@pytest.fixture(scope="module")
def client_copy(tmp_path_factory) -> tuple[str, Path]:
    npm = _npm()
    if not _installed_matches_lock():
        subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund"],
            cwd=CLIENT,
            check=True,
            capture_output=True,
            timeout=300,
        )
    work = tmp_path_factory.mktemp("typescript-client")
    for name in ("package.json", "tsconfig.json"):
        shutil.copy(CLIENT / name, work / name)
    shutil.copytree(CLIENT / "src", work / "src", ignore=shutil.ignore_patterns("schema.d.ts"))
    (work / "node_modules").symlink_to(CLIENT / "node_modules", target_is_directory=True)
    return npm, work


@pytest.fixture(scope="module")
def schema(tmp_path_factory) -> dict:
    path = tmp_path_factory.mktemp("schema") / "openapi.json"
    call_command("spectacular", "--format", "openapi-json", "--file", str(path))
    return json.loads(path.read_text())


def _check(client_copy: tuple[str, Path], schema: dict) -> subprocess.CompletedProcess:
    """`npm run check` (generate, then `tsc --noEmit`) against this schema."""
    npm, work = client_copy
    path = work / "openapi.json"
    path.write_text(json.dumps(schema))
    return subprocess.run(
        [npm, "run", "check"],
        cwd=work,
        env={**os.environ, "OPENAPI_SCHEMA": str(path)},
        capture_output=True,
        text=True,
        timeout=120,
    )


def _component(schema: dict, ref_holder: dict) -> dict:
    ref = ref_holder["$ref"] if "$ref" in ref_holder else ref_holder["allOf"][0]["$ref"]
    return schema["components"]["schemas"][ref.rsplit("/", 1)[-1]]


def _without_max_budget(schema: dict) -> None:
    body = schema["paths"]["/v1/swarms"]["post"]["requestBody"]["content"]["application/json"]
    del _component(schema, body["schema"])["properties"]["max_budget_usd"]


def _with_another_status(schema: dict) -> None:
    ok = schema["paths"]["/v1/swarms/{id}"]["get"]["responses"]["200"]["content"]
    status = _component(
        schema, _component(schema, ok["application/json"]["schema"])["properties"]["status"]
    )
    status["enum"] = [value for value in status["enum"] if value != "cancelled"] + ["paused"]


def test_check_passes_on_the_real_schema(client_copy, schema):
    result = _check(client_copy, schema)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    ("doctor", "named"),
    [(_without_max_budget, "max_budget_usd"), (_with_another_status, "paused")],
)
def test_check_fails_when_the_schema_breaks_clients(client_copy, schema, doctor, named):
    broken = json.loads(json.dumps(schema))
    doctor(broken)
    result = _check(client_copy, broken)
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    errors = [line for line in output.splitlines() if "error TS" in line]
    assert errors, output
    assert all(line.startswith("src/check.ts(") for line in errors), output
    assert any(named in line for line in errors), output
