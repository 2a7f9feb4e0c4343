"""Housekeeping of the PySpark Python workers that run the trace stage's row logic (the dump
source's reads and the ``mapInArrow`` bodies): nothing is built here.

A reused PySpark worker runs a full ``gc.collect()`` after every task (``pyspark/daemon.py``).
With pyarrow, pandas, lxml and the matchers imported, that collection walks about 80,000
long-lived objects: 25-60 ms of CPU per task, a large part of a small task (BENCHMARKS.md).
``freeze_imports`` moves the objects alive now (modules, classes, caches: they live as long as
the worker) out of the collector's reach (``gc.freeze``), again only when modules were imported
since; what the tasks allocate is collected as before, and frozen objects are still freed when
nothing refers to them.
"""

from __future__ import annotations

import functools
import gc
import sys
from collections.abc import Callable, Iterator
from typing import TypeVar

from pyspark import TaskContext

T = TypeVar("T")
_modules_frozen = 0  # len(sys.modules) at the last freeze


def freeze_imports() -> None:
    """In a Spark task, freeze the worker's long-lived heap if modules were imported since the
    last freeze (call at the start and the end of a task's work); on the driver: nothing."""
    global _modules_frozen
    if len(sys.modules) <= _modules_frozen or TaskContext.get() is None:
        return
    gc.collect()  # what is garbage now is not frozen with the rest
    gc.freeze()
    _modules_frozen = len(sys.modules)


def freezing(items: Iterator[T]) -> Iterator[T]:
    """``items`` (a task's output) with ``freeze_imports`` before the first and after the last
    (the first task imports most of what a worker keeps)."""
    freeze_imports()
    yield from items
    freeze_imports()


def frozen(fn: Callable[[Iterator[T]], Iterator[T]]) -> Callable[[Iterator[T]], Iterator[T]]:
    """``fn`` (a ``mapInArrow`` body) run through ``freezing``."""
    return functools.partial(_run_frozen, fn)


def _run_frozen(fn: Callable[[Iterator[T]], Iterator[T]], batches: Iterator[T]) -> Iterator[T]:
    return freezing(fn(batches))
