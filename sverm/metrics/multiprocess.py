"""prometheus-client's multiprocess mode (PROMETHEUS_MULTIPROC_DIR set): where each process
keeps its metrics, and the removal of what dead processes leave.

Each process writes its metrics into files of its own in the shared directory, named after its
process identifier, and a scrape adds every file up. prometheus-client names them by pid alone,
but docker-compose.yml shares one directory between the web and worker containers, whose pids
overlap (each container numbers from 1): here the identifier is `<hostname>-<pid>`, unique
across the containers of a host.

Counters and histograms of a process that ended stay counted (they are totals). The live gauges
(`multiprocess_mode="livesum"`: open WebSockets) must not: a process removes its own files when
it exits (`mark_process_dead`, at exit, or on a Celery pool process's shutdown signal), and what a
killed process (SIGKILL) left is removed by the next process of the same host to start or to
serve a scrape, since only processes of one host (one container) see each other's pids.
"""

import atexit
import glob
import os
import re
import socket

from prometheus_client import multiprocess, values

ENV_VAR = "PROMETHEUS_MULTIPROC_DIR"
# Hostnames may hold characters that file names of prometheus-client's may not: its parser
# splits them on "_".
_HOST = re.sub(r"[^A-Za-z0-9.-]", "-", socket.gethostname()) or "host"
# What prometheus-client's live gauge files start with (`gauge_livesum_<identifier>.db`, ...).
_LIVE_FILES = re.compile(r"^gauge_live[a-z]+_(?P<identifier>[^_]+)\.db$")


def directory() -> str | None:
    """The shared directory, or None in the single-process mode."""
    return os.environ.get(ENV_VAR) or None


def process_identifier() -> str:
    return f"{_HOST}-{os.getpid()}"


def configure() -> None:
    """Switch prometheus-client to the multiprocess mode with this module's identifiers when
    PROMETHEUS_MULTIPROC_DIR is set; call before any metric is made."""
    path = directory()
    if path is None:
        return
    os.makedirs(path, exist_ok=True)
    values.ValueClass = values.MultiProcessValue(process_identifier=process_identifier)
    # Files a dead process with this pid left behind (a restarted container numbers alike).
    mark_process_dead(process_identifier())
    remove_dead_processes()
    atexit.register(lambda: mark_process_dead(process_identifier()))


def mark_process_dead(identifier: str) -> None:
    path = directory()
    if path is not None:
        multiprocess.mark_process_dead(identifier, path)


def remove_dead_processes() -> None:
    """Remove the live gauges of this host's processes that are gone (killed without a chance
    to remove them); another host's are left to that host."""
    path = directory()
    if path is None:
        return
    for name in {os.path.basename(f) for f in glob.glob(os.path.join(path, "gauge_live*.db"))}:
        match = _LIVE_FILES.match(name)
        if match is None:
            continue
        host, _, pid = match["identifier"].rpartition("-")
        if host == _HOST and pid.isdigit() and not _alive(int(pid)):
            mark_process_dead(match["identifier"])


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's: alive
        return True
    return True
