"""CPU seconds of a process tree, for benchmarks that start a JVM and Python workers."""

from __future__ import annotations

import os
from pathlib import Path


def tree_cpu() -> float:
    """CPU seconds of this process and all its descendants (the JVM and its Python workers)."""
    tick, kids, cpu = os.sysconf("SC_CLK_TCK"), {}, {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                f = Path(f"/proc/{d}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            kids.setdefault(int(f[1]), []).append(int(d))
            cpu[int(d)] = sum(int(x) for x in f[11:15]) / tick
    todo, total = [os.getpid()], 0.0
    while todo:
        p = todo.pop()
        total += cpu.get(p, 0.0)
        todo += kids.get(p, [])
    return total
