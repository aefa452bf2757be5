"""Lease ownership: who we are, and whether a lease holder on this host is our dead predecessor."""

from __future__ import annotations

import os
import socket
import uuid


def make_owner() -> str:
    """`host:pid:nonce` — the nonce tells a restarted PID 1 apart from its predecessor."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def dead_predecessor(holder: str | None, me: str) -> bool:
    """A lease held on this host by a process that no longer runs (a container restart keeps the
    hostname and often PID 1): we may take it at once instead of waiting for it to expire."""
    if not holder or holder == me:
        return False
    try:
        host, pid_text, _ = holder.rsplit(":", 2)
        my_host, my_pid, _ = me.rsplit(":", 2)
    except ValueError:
        return False
    if host != my_host:
        return False
    if pid_text == my_pid:
        return True  # same PID, other nonce: we replaced that process
    return not _alive(int(pid_text)) if pid_text.isdigit() else False


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
