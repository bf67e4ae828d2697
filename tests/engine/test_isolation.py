"""The engine is plain Python: importing it must not import Django (or Celery, or Channels)."""

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_engine_imports_no_framework():
    probe = (
        "import sys, swarms.engine, swarms.engine.estimate, swarms.engine.runner\n"
        "loaded = sorted({m.split('.')[0] for m in sys.modules} & "
        "{'django', 'rest_framework', 'celery', 'channels'})\n"
        "print(','.join(loaded))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, env={}, cwd=REPO
    )
    assert out.stdout.strip() == ""
