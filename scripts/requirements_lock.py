"""Writes requirements.lock: exact pins of dicomcast's runtime dependencies (with the `postgres`
extra), as installed in this venv, for the container image. Test tools are not included.

    .venv/bin/python scripts/requirements_lock.py > requirements.lock

Environment markers are evaluated for this interpreter: run it on Linux with the image's Python
minor version (3.11).
"""

from __future__ import annotations

import re
import sys
from importlib import metadata

from packaging.requirements import Requirement

ROOT_PACKAGE, ROOT_EXTRAS = "dicomcast", ("postgres",)


def _key(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def closure() -> dict[str, metadata.Distribution]:
    found: dict[str, metadata.Distribution] = {}
    extras_seen: dict[str, set[str]] = {}
    todo: list[tuple[str, tuple[str, ...]]] = [(ROOT_PACKAGE, ROOT_EXTRAS)]
    while todo:
        name, extras = todo.pop()
        key = _key(name)
        if key in found and set(extras) <= extras_seen[key]:
            continue
        dist = metadata.distribution(name)
        found[key] = dist
        extras_seen[key] = extras_seen.get(key, set()) | set(extras)
        for text in dist.requires or []:
            requirement = Requirement(text)
            envs = [{"extra": extra} for extra in (extras or ("",))]
            if requirement.marker and not any(requirement.marker.evaluate(env) for env in envs):
                continue
            todo.append((requirement.name, tuple(requirement.extras)))
    return found


def main() -> None:
    print("# Runtime dependencies of dicomcast[postgres], pinned (scripts/requirements_lock.py; Python 3.11, Linux).")
    for key, dist in sorted(closure().items()):
        if key != ROOT_PACKAGE:
            print(f"{dist.metadata['Name']}=={dist.version}")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
