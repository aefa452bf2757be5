"""Is the store durable? A SQLite file on a container's own (writable layer) filesystem is lost
when the container is recreated: in Azure Container Instances a stop/start does exactly that, so
the checkpoint would go and the whole feed be replayed. `dicomcast run` warns once at start-up.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from dicomcast.logs import get_logger

log = get_logger("dicomcast.store")

_CONTAINER_FILES = ("/.dockerenv", "/run/.containerenv")  # Docker/Moby (also ACI), Podman
_CGROUP_MARKERS = ("docker", "kubepods", "containerd", "libpod", "lxc")


def in_container(root: Path = Path("/"), environ: Mapping[str, str] = os.environ) -> bool:
    """The usual signs of a container: the runtime's marker file, Kubernetes' variable, or a
    container runtime in PID 1's cgroup (cgroup v1; v2 shows only "/", hence the marker files)."""
    if any((root / marker.lstrip("/")).exists() for marker in _CONTAINER_FILES):
        return True
    if environ.get("KUBERNETES_SERVICE_HOST"):
        return True
    try:
        cgroup = (root / "proc/1/cgroup").read_text(errors="replace")
    except OSError:
        return False
    return any(marker in cgroup for marker in _CGROUP_MARKERS)


def mount_point(path: Path, mountinfo: str) -> str:
    """The mount point holding `path` (longest matching prefix in /proc/self/mountinfo)."""
    best = "/"
    for line in mountinfo.splitlines():
        fields = line.split()
        if len(fields) < 5:
            continue
        point = fields[4].replace("\\040", " ")
        inside = str(path) == point or str(path).startswith(point.rstrip("/") + "/")
        if inside and len(point) > len(best):
            best = point
    return best


def sqlite_file(connection_string: str) -> Path | None:
    """The database file of a SQLite URL (None for other databases and in-memory SQLite)."""
    try:
        url = make_url(connection_string)
    except ArgumentError:
        return None
    if not url.drivername.startswith("sqlite") or not url.database or url.database == ":memory:":
        return None
    return Path(url.database).resolve()


def ephemeral_sqlite(
    connection_string: str, root: Path = Path("/"), environ: Mapping[str, str] = os.environ
) -> Path | None:
    """The SQLite file when it sits on a container's own filesystem (not on a mounted volume)."""
    database = sqlite_file(connection_string)
    if database is None or not in_container(root, environ):
        return None
    try:
        mountinfo = (root / "proc/self/mountinfo").read_text(errors="replace")
    except OSError:
        return database  # cannot tell: assume the container's own filesystem
    return database if mount_point(database, mountinfo) == "/" else None


EPHEMERAL_STORE_WARNING = (
    "store is a SQLite file on the container's own filesystem: a container restart or an ACI stop/start "
    "loses the checkpoint and replays the whole feed; set Store__ConnectionString to PostgreSQL, or put "
    "the file on a mounted volume"
)


def warn_if_ephemeral_store(connection_string: str) -> None:
    path = ephemeral_sqlite(connection_string)
    if path is not None:
        log.warning(EPHEMERAL_STORE_WARNING, path=str(path))
