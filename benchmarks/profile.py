"""Summaries of py-spy's collapsed stacks (`--format raw`): where a variant spends its samples.

.venv/bin/python -m benchmarks.profile FILE.stacks.txt [--top 25] [--filter dicomcast]
"""

from __future__ import annotations

import argparse
import re
from collections import Counter
from pathlib import Path

IDLE = (
    "wait (threading.py",
    "_wait_for_tstate_lock",
    "select (selectors.py",
    "poll (selectors.py",
    "readinto (socket.py",
)
PROJECT_CODE = ("dicomcast/", "worker/", "mapping/", "dicom/", "fhir/", "store/", "httpx", "json", "structlog")
_FRAME = re.compile(r"^(?P<func>.+?) \((?P<file>[^:]+?)(?::(?P<line>\d+))?\)$")


def read_stacks(path: Path) -> list[tuple[list[str], int]]:
    stacks = []
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if stack and count.isdigit():
            stacks.append((stack.split(";"), int(count)))
    return stacks


def function_of(frame: str) -> str:
    """`func (path/to/file.py:12)` -> `func (file.py)`: lines of one function add up."""
    match = _FRAME.match(frame.strip())
    if not match:
        return frame.strip()
    return f"{match['func']} ({'/'.join(match['file'].split('/')[-2:])})"


def summarize(path: Path, top: int = 25, only: tuple[str, ...] | str | None = None) -> str:
    """Functions by share of busy samples, inclusive and self; `only`: names containing one of these."""
    wanted = (only,) if isinstance(only, str) else only
    stacks = read_stacks(path)
    busy = [(frames, n) for frames, n in stacks if not any(idle in frames[-1] for idle in IDLE)]
    total = sum(n for _, n in busy) or 1
    inclusive: Counter[str] = Counter()
    own: Counter[str] = Counter()
    for frames, n in busy:
        functions = [function_of(f) for f in frames]
        for name in set(functions):
            inclusive[name] += n
        own[functions[-1]] += n
    lines = [f"{path.name}: {total} busy samples (idle waits left out)", "  total%  self%  function"]
    for name, n in inclusive.most_common():
        if wanted and not any(w in name for w in wanted):
            continue
        lines.append(f"  {100 * n / total:6.1f} {100 * own[name] / total:6.1f}  {name}")
        if len(lines) >= top + 2:
            break
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(prog="benchmarks.profile")
    parser.add_argument("stacks", type=Path)
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--filter", help="only functions whose name or file contains this")
    args = parser.parse_args()
    print(summarize(args.stacks, args.top, args.filter))


if __name__ == "__main__":
    main()
