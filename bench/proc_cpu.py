"""CPU seconds of processes, from ``/proc`` (Linux), for the benchmarks."""

from __future__ import annotations

import os
from pathlib import Path


def cpu_s(pid: int) -> float:
    """User + system CPU seconds of ``pid`` so far (0.0 once it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def children(pid: int) -> list[int]:
    """Direct children of ``pid``, from every one of its threads."""
    kids: list[int] = []
    try:
        for task in Path(f"/proc/{pid}/task").iterdir():
            kids += [int(c) for c in (task / "children").read_text().split()]
    except OSError:
        pass  # it exited meanwhile
    return kids


def tree_cpu_s(pid: int) -> float:
    """CPU seconds of ``pid`` and all its descendants."""
    total, todo = 0.0, [pid]
    while todo:
        p = todo.pop()
        total += cpu_s(p)
        todo += children(p)
    return total
