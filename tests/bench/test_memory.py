"""`python -m bench.memory`, the tool bench/README.md's "Where memory goes" is measured with,
run as its README says: it starts the embedded server, warms it up and prints each process's
memory. Its production layout needs PostgreSQL and Redis and shares every step but the start."""

import subprocess
import sys
from pathlib import Path

from tests.processes import embedded_server_env

ROOT = Path(__file__).resolve().parents[2]


def test_the_embedded_layout_prints_the_servers_memory_and_stops_it(tmp_path):
    env = embedded_server_env(tmp_path)  # none of the suite's settings or services
    done = subprocess.run(
        [sys.executable, "-m", "bench.memory", "embedded"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.strip().splitlines()
    assert lines[0].startswith("embedded: python -m sverm.server")
    [server] = [line for line in lines if "sverm.server" in line and line.split()[0].isdigit()]
    pid, _threads, rss, pss, uss = server.split()[:5]
    assert 20 < float(rss) < 1024 and 0 < float(uss) <= float(pss) <= float(rss)
    total = lines[-1].split()
    assert total[0] == "total" and float(total[1]) >= float(rss)
    # The server was stopped on the way out.
    assert not Path(f"/proc/{pid}").exists()
