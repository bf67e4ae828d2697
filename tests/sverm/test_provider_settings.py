"""SVERM_PROVIDERS as settings read it: each entry's `kind` decides what it must carry."""

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
READ = "import json; from sverm import settings; print(json.dumps(settings.LLM_PROVIDERS))"


def providers_read(value: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "SVERM_PROVIDERS": value}
    for name in ("OPENAI_API_KEY", "DEEPSEEK_API_KEY"):
        env.pop(name, None)
    return subprocess.run(
        [sys.executable, "-c", READ], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )


def test_an_openai_compatible_entry_needs_an_api_key():
    for entry in ({"base_url": "http://llm.test/v1"}, {"kind": "openai-compatible"}):
        read = providers_read(json.dumps({"local": entry}))
        assert read.returncode != 0
        assert "SVERM_PROVIDERS['local'] needs an api_key." in read.stderr


def test_a_simulated_entry_needs_no_api_key():
    read = providers_read(json.dumps({"sim": {"kind": "simulated"}}))
    assert read.returncode == 0, read.stderr
    assert json.loads(read.stdout.strip().splitlines()[-1])["sim"]["kind"] == "simulated"


def test_an_entry_that_is_not_an_object_is_refused():
    read = providers_read(json.dumps({"local": "sk-123"}))
    assert read.returncode != 0
    assert "SVERM_PROVIDERS['local'] must be an object." in read.stderr
