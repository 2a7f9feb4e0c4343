"""The executors' check and size: what a cluster's executors run, and how big they may be.

``check(spark)`` runs one tiny Spark job at the start of a cluster run. Each task reports
``environment()``: the factroots version, a fingerprint of the code it imports, Python's
version and the versions of the compiled dependencies. Any executor that differs from the
driver (other code, a missing or other dependency) aborts the run with one line, and so does
a cluster that starts no executor within ``spark.factroots.executorTimeout`` seconds (asked
for more memory than a worker has). Local mode is not checked: its workers run beside the
driver.

``fit(state)`` sizes the executors to a standalone master's workers (its ``/json`` page);
``spark_jobs/submit.sh`` calls it as ``python -m factroots.trace.executors fit <master>``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import sys
import threading
import time
import urllib.error
import urllib.request
from importlib import metadata, resources
from typing import Any

from factroots import __version__
from factroots.errors import ConfigError

# the modules the trace imports on the executors -> their distribution (version source)
DEPS = {"pyarrow": "pyarrow", "numpy": "numpy", "pandas": "pandas", "yaml": "pyyaml",
        "zhconv": "zhconv", "lxml": "lxml", "sentencex": "sentencex",
        "ahocorasick": "pyahocorasick", "mwparserfromhell": "mwparserfromhell",
        "tokenizers": "tokenizers"}
TIMEOUT_KEY = "spark.factroots.executorTimeout"
TIMEOUT_S = 180.0
MIN_HEAP_MB = 512       # Spark refuses executors under 450 MB of heap
MAX_HEAP_MB = 6144      # more heap does not speed the trace: its work runs in Python workers
JOB_DESC = "factroots: executor check"
log = logging.getLogger(__name__)


def code_fingerprint() -> str:
    """A hash of every ``.py`` file of the imported factroots package (directory or zip)."""
    h = hashlib.sha256()
    for rel, data in sorted(_sources(resources.files("factroots"), "")):
        h.update(rel.encode() + b"\0" + data + b"\0")
    return h.hexdigest()[:16]


def _sources(node: Any, prefix: str) -> list[tuple[str, bytes]]:
    out = []
    for child in node.iterdir():
        rel = f"{prefix}{child.name}"
        if child.is_dir() and child.name != "__pycache__":
            out += _sources(child, rel + "/")
        elif child.name.endswith(".py"):
            out.append((rel, child.read_bytes()))
    return out


def environment() -> dict[str, str]:
    """What this process runs: factroots version, code and data, Python, pyspark and each
    dependency."""
    env = {"factroots": __version__, "code": code_fingerprint(),
           "python": f"{sys.version_info[0]}.{sys.version_info[1]}"}
    try:  # the package's data files (the cleaner's namespaces) must read from the code zip too
        from factroots.text.wikitext import namespace_data
        env["data"] = f"{len(namespace_data()['langs'])} namespace languages"
    except Exception as exc:  # noqa: BLE001 - unreadable data is a difference like any other
        env["data"] = f"unreadable ({type(exc).__name__})"
    for module, dist in {"pyspark": "pyspark", **DEPS}.items():
        try:
            mod = __import__(module)
            env[dist] = getattr(mod, "__version__", None) or metadata.version(dist)
        except Exception as exc:  # noqa: BLE001 - a dependency that fails to import is "missing"
            env[dist] = f"missing ({type(exc).__name__})"
    return env


def differences(driver: dict[str, str], executor: dict[str, str]) -> list[str]:
    """``key: driver value != executor value`` for every entry where the two differ."""
    keys = sorted(set(driver) | set(executor))
    return [f"{k} {driver.get(k, 'absent')} on the driver, {executor.get(k, 'absent')} there"
            for k in keys if driver.get(k) != executor.get(k)]


def compare(driver: dict[str, str], reports: list[dict[str, str]]) -> None:
    """Raise a one-line ``ConfigError`` unless every executor's report equals the driver's."""
    for rep in reports:
        where = rep.pop("where", "an executor")
        if "error" in rep:
            raise ConfigError(f"the executors cannot import factroots ({where}: {rep['error']})",
                              FIX)
        if diff := differences(driver, rep):
            raise ConfigError(f"an executor runs other code than the driver ({where}): "
                              + "; ".join(diff), FIX)


FIX = ("ship the code and environment the driver runs: spark_jobs/submit.sh builds the code "
       "zip (--py-files) and the executors' env (--archives) from the driver's venv")


def _report_task(_rows: Any) -> Any:
    """One task's report, self-contained: cloudpickle ships it by value, so it runs even where
    factroots cannot be imported and then says why."""
    import json as _json
    import os as _os
    import socket as _socket
    import time as _time

    _time.sleep(0.2)  # a short task: the scheduler spreads the check over every executor
    where = f"{_socket.gethostname()}:{_os.getcwd()}"
    try:
        from factroots.trace.executors import environment as _env
        rep = _env()
    except Exception as exc:  # noqa: BLE001 - reported to the driver as one line
        rep = {"error": f"{type(exc).__name__}: {exc}"}
    rep["where"] = where
    yield _json.dumps(rep)


def check(spark: Any, timeout_s: float | None = None) -> int:
    """Check that every executor runs the driver's code and dependencies; the number checked.

    Local masters are skipped (0). Raises ``ConfigError`` with one line on any difference, and
    when the check job has not run within the timeout (no executor could start).
    """
    sc = spark.sparkContext
    if sc.master.startswith("local"):
        return 0
    timeout = float(timeout_s if timeout_s is not None
                    else sc.getConf().get(TIMEOUT_KEY, str(TIMEOUT_S)))
    n_tasks = max(4, 4 * sc.defaultParallelism)
    report_task = _by_value(_report_task)
    group = f"factroots-executor-check-{time.time_ns()}"
    sc.setJobGroup(group, JOB_DESC, interruptOnCancel=True)
    timer = threading.Timer(timeout, sc.cancelJobGroup, args=(group,))
    timer.start()
    try:
        rows = sc.parallelize(range(n_tasks), n_tasks).mapPartitions(report_task).collect()
    except Exception as exc:
        if not timer.is_alive():
            raise ConfigError(_no_executor(sc, timeout), _NO_EXECUTOR_FIX) from None
        raise ConfigError("the executor check failed on the executors: "
                          + _last_line(str(exc)), FIX) from None
    finally:
        timer.cancel()
        sc.setLocalProperty("spark.jobGroup.id", None)
        sc.setLocalProperty("spark.job.description", None)
    reports = [json.loads(r) for r in rows]
    seen = len({r.get("where") for r in reports})
    driver = environment()
    compare(driver, reports)
    log.info("executor check: %d of %d executors run factroots %s (code %s) and the driver's "
             "dependencies", seen, _n_executors(sc), driver["factroots"], driver["code"])
    return seen


def _by_value(func: Any) -> Any:
    """``func`` as a fresh function outside any importable module, so cloudpickle ships its
    code rather than a reference to ``factroots`` (which the executors might lack)."""
    import types
    return types.FunctionType(func.__code__, {"__builtins__": __builtins__}, func.__name__)


def _last_line(text: str) -> str:
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    errs = [ln for ln in lines if "Error" in ln or "Exception" in ln]
    return (errs[-1] if errs else lines[-1] if lines else "unknown error")[:400]


_NO_EXECUTOR_FIX = ("size the executors to the workers (spark_jobs/submit.sh does it for a "
                    "standalone master) or raise " + TIMEOUT_KEY)


def _no_executor(sc: Any, timeout: float) -> str:
    conf = sc.getConf()
    mem = conf.get("spark.executor.memory", "1g")
    msg = (f"the executor check did not run within {timeout:g} s on {sc.master}: "
           f"{_n_executors(sc)} executors "
           f"registered, each asks spark.executor.memory={mem}")
    if sc.master.startswith("spark://"):
        try:
            workers = alive_workers(read_master(master_ui(sc.master), timeout_s=3))
            msg += "; the workers offer " + ", ".join(
                f"{w['memory']} MB / {w['cores']} cores" for w in workers) if workers else \
                "; the master lists no alive worker"
        except ConfigError:
            pass
    return msg


def _n_executors(sc: Any) -> int:
    return sc._jsc.sc().getExecutorMemoryStatus().size() - 1  # minus the driver's own


def master_ui(master: str) -> str:
    """The JSON page of a standalone master: ``spark://host:7077`` -> ``http://host:8080/json/``
    (the port from ``SPARK_MASTER_WEBUI_PORT`` when set, as the master itself reads it)."""
    if not master.startswith("spark://"):
        raise ConfigError(f"{master!r} is not a standalone master (spark://host:port)",
                          "pass --master-ui http://host:port of its web UI")
    host = master[len("spark://"):].split(",")[0].rsplit(":", 1)[0]
    return f"http://{host}:{os.environ.get('SPARK_MASTER_WEBUI_PORT') or 8080}/json/"


def read_master(url: str, timeout_s: float = 60.0) -> dict:
    """The master's JSON state, retried until it lists an alive worker or ``timeout_s`` ends."""
    deadline = time.monotonic() + timeout_s
    last = "no answer"
    while True:
        try:
            with urllib.request.urlopen(url, timeout=5) as resp:  # noqa: S310 - the user's master
                state = json.loads(resp.read().decode("utf-8"))
            if alive_workers(state):
                return state
            last = "no alive worker"
        except (urllib.error.URLError, OSError, ValueError) as exc:
            last = f"{type(exc).__name__}: {exc}"
        if time.monotonic() >= deadline:
            raise ConfigError(f"the Spark master at {url} did not list an alive worker within "
                              f"{timeout_s:g} s ({last})",
                              "start the workers, or pass --master-ui with the master's web UI")
        time.sleep(1.0)


def alive_workers(state: dict) -> list[dict]:
    """The workers of a master's JSON state that are ALIVE."""
    return [w for w in state.get("workers", []) if w.get("state") == "ALIVE"]


def fit(state: dict, max_heap_mb: int = MAX_HEAP_MB) -> dict[str, str]:
    """Executor settings that fit every alive worker: one executor per worker with all its
    cores, a heap of half its memory (512 MB to ``max_heap_mb``), all workers used.

    The other half is for the Python workers, which do the trace's work and whose memory the
    standalone master does not count. Raises ``ConfigError`` when a worker is too small.
    """
    workers = alive_workers(state)
    if not workers:
        raise ConfigError("the Spark master lists no alive worker", "start the workers first")
    mem = min(int(w["memory"]) for w in workers)
    cores = min(int(w["cores"]) for w in workers)
    heap = min(max_heap_mb, mem // 2)
    if heap < MIN_HEAP_MB:
        if mem < MIN_HEAP_MB:
            raise ConfigError(f"the smallest worker offers {mem} MB: Spark needs at least "
                              f"{MIN_HEAP_MB} MB per executor",
                              "give each worker at least 1g (SPARK_WORKER_MEMORY or --memory)")
        heap = MIN_HEAP_MB
    # all the workers' cores, and the first job waits (30 s at most) until every executor is
    # up: the executor check then sees them all
    return {"spark.executor.memory": f"{heap}m", "spark.executor.cores": str(cores),
            "spark.cores.max": str(sum(int(w["cores"]) for w in workers)),
            "spark.scheduler.minRegisteredResourcesRatio": "1.0"}


def _main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m factroots.trace.executors",
                                 description="size executors to a standalone master's workers")
    sub = ap.add_subparsers(dest="cmd", required=True)
    f = sub.add_parser("fit", help="print --conf settings that fit the master's workers")
    f.add_argument("master", help="spark://host:port")
    f.add_argument("--master-ui", default=None, help="the master's JSON page (default: port 8080)")
    f.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for workers")
    sub.add_parser("env", help="print this process's environment report (JSON)")
    args = ap.parse_args(argv)
    try:
        if args.cmd == "env":
            print(json.dumps(environment(), sort_keys=True))
            return 0
        url = args.master_ui or master_ui(args.master)
        url = url if url.rstrip("/").endswith("json") else url.rstrip("/") + "/json/"
        settings = fit(read_master(url, args.timeout))
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(" ".join(f"--conf {k}={v}" for k, v in settings.items()))
    return 0


if __name__ == "__main__":
    sys.exit(_main())
