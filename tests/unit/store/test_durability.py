"""The warning for a SQLite store on a container's own filesystem (lost on ACI stop/start)."""

from __future__ import annotations

from pathlib import Path

import pytest

from dicomcast.store.durability import ephemeral_sqlite, in_container, mount_point, sqlite_file

OVERLAY_ONLY = "22 1 0:21 / / rw,relatime - overlay overlay rw\n23 22 0:22 / /proc rw - proc proc rw\n"
WITH_SHARE = OVERLAY_ONLY + "40 22 0:45 / /mnt/store rw,relatime - cifs //acct.file.core.windows.net/share rw\n"


def fake_root(tmp_path: Path, *, dockerenv: bool, mountinfo: str | None, cgroup: str = "0::/\n") -> Path:
    (tmp_path / "proc/self").mkdir(parents=True)
    (tmp_path / "proc/1").mkdir(parents=True)
    (tmp_path / "proc/1/cgroup").write_text(cgroup)
    if mountinfo is not None:
        (tmp_path / "proc/self/mountinfo").write_text(mountinfo)
    if dockerenv:
        (tmp_path / ".dockerenv").write_text("")
    return tmp_path


def test_container_signs(tmp_path: Path) -> None:
    assert in_container(fake_root(tmp_path / "a", dockerenv=True, mountinfo=None), {})
    assert not in_container(fake_root(tmp_path / "b", dockerenv=False, mountinfo=None), {})
    assert in_container(
        fake_root(tmp_path / "c", dockerenv=False, mountinfo=None), {"KUBERNETES_SERVICE_HOST": "10.0.0.1"}
    )
    cgroup_v1 = "12:memory:/docker/0123abcd\n"
    assert in_container(fake_root(tmp_path / "d", dockerenv=False, mountinfo=None, cgroup=cgroup_v1), {})


def test_mount_point_is_the_longest_prefix() -> None:
    assert mount_point(Path("/app/dicomcast.db"), WITH_SHARE) == "/"
    assert mount_point(Path("/mnt/store/dicomcast.db"), WITH_SHARE) == "/mnt/store"
    assert mount_point(Path("/mnt/storeroom/x.db"), WITH_SHARE) == "/"  # a prefix of the name is not a mount


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("sqlite:////app/dicomcast.db", Path("/app/dicomcast.db")),
        ("sqlite:///:memory:", None),
        ("sqlite://", None),
        ("postgresql+psycopg://u:p@db.example/dicomcast", None),
        ("not a url", None),
    ],
)
def test_sqlite_file(url: str, expected: Path | None) -> None:
    assert sqlite_file(url) == expected


def test_warns_only_for_sqlite_on_the_container_filesystem(tmp_path: Path) -> None:
    container = fake_root(tmp_path / "c", dockerenv=True, mountinfo=WITH_SHARE)
    assert ephemeral_sqlite("sqlite:////app/dicomcast.db", container, {}) == Path("/app/dicomcast.db")
    assert ephemeral_sqlite("sqlite:////mnt/store/dicomcast.db", container, {}) is None  # a mounted share
    assert ephemeral_sqlite("postgresql+psycopg://u:p@db/dicomcast", container, {}) is None
    host = fake_root(tmp_path / "h", dockerenv=False, mountinfo=OVERLAY_ONLY)
    assert ephemeral_sqlite("sqlite:////app/dicomcast.db", host, {}) is None  # not a container
