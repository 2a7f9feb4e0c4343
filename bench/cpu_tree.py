"""CPU seconds and peak memory of a process tree, for benchmarks that start a JVM and Python
workers."""

from __future__ import annotations

import os
from pathlib import Path


def _tree() -> tuple[dict[int, list[int]], dict[int, list[str]]]:
    kids: dict[int, list[int]] = {}
    stat: dict[int, list[str]] = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                f = Path(f"/proc/{d}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            kids.setdefault(int(f[1]), []).append(int(d))
            stat[int(d)] = f
    return kids, stat


def _descendants(kids: dict[int, list[int]]) -> list[int]:
    todo, out = [os.getpid()], []
    while todo:
        p = todo.pop()
        out.append(p)
        todo += kids.get(p, [])
    return out


def tree_cpu() -> float:
    """CPU seconds of this process and all its descendants (the JVM and its Python workers)."""
    return sum(tree_cpu_by_kind().values())


def tree_cpu_by_kind() -> dict[str, float]:
    """CPU seconds of this process and its descendants: ``jvm`` and ``python`` (the others)."""
    tick = os.sysconf("SC_CLK_TCK")
    kids, stat = _tree()
    out = {"jvm": 0.0, "python": 0.0}
    for p in _descendants(kids):
        if p in stat:
            out[_kind(p)] += sum(int(x) for x in stat[p][11:15]) / tick
    return out


def _kind(pid: int) -> str:
    try:
        cmd = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0]
    except OSError:
        return "python"
    return "jvm" if cmd.endswith(b"java") else "python"


def peak_rss_mb() -> dict[str, float]:
    """Peak resident memory (VmHWM, MB) of the JVM and the largest Python worker below it."""
    kids, _ = _tree()
    out = {"jvm": 0.0, "python_worker": 0.0}
    for p in _descendants(kids)[1:]:
        try:
            status = Path(f"/proc/{p}/status").read_text()
            cmd = Path(f"/proc/{p}/cmdline").read_bytes()
        except OSError:
            continue
        hwm = next((int(x.split()[1]) / 1024 for x in status.splitlines()
                    if x.startswith("VmHWM:")), 0.0)
        kind = "jvm" if cmd.split(b"\0")[0].endswith(b"java") else "python_worker"
        out[kind] = max(out[kind], hwm)
    return out
