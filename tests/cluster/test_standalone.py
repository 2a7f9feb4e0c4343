"""The trace on a Spark standalone cluster (a master and two workers on 127.0.0.1), started
exactly as spark_jobs/README.md says: every table equals local mode's row for row, executors
that differ from the driver or fit no worker stop the run with one line, and a worker killed
mid-stage changes nothing in the output.

Order matters: the worker is killed by the last test (the tier's cluster lives for the
session).
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pyarrow as pa
import pytest
from standalone import ROOT, Cluster, Inputs, free_port, read_json

from factroots import storage, tables

pytestmark = [pytest.mark.cluster, pytest.mark.slow]
TABLES = ("pages", "sentences", "mentions", "cooccurrence")
SUBMIT = str(ROOT / "spark_jobs" / "submit.sh")
README = ROOT / "spark_jobs" / "README.md"


def readme_block() -> str:
    """The cluster commands of spark_jobs/README.md (the block between its markers)."""
    text = README.read_text(encoding="utf-8")
    m = re.search(r"<!-- cluster-commands:.*?-->\s*```bash\n(.*?)```\s*<!-- /cluster-commands -->",
                  text, re.S)
    assert m, "spark_jobs/README.md lost its cluster-commands block"
    return m.group(1)


def with_settings(block: str, **values: str) -> str:
    """The block with its ``NAME=...`` lines set to ``values`` (each must be there once)."""
    for name, value in values.items():
        block, n = re.subn(rf"^{name}=\S+", f"{name}={value}", block, flags=re.M)
        assert n == 1, f"README block has no single {name}= line"
    return block


def run(cmd: list[str], env: dict, log: Path, timeout: int = 900,
        on_start=None) -> subprocess.CompletedProcess:
    """Run ``cmd`` in its own process group (killed whole on a timeout); its output is
    returned and kept in ``log`` (beside the run's ``out``) for a failure's diagnosis."""
    with subprocess.Popen(cmd, env={**env, "PYTHON": sys.executable}, cwd=ROOT, text=True,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          start_new_session=True) as proc:
        watcher = threading.Thread(target=on_start, args=(proc,)) if on_start else None
        if watcher:
            watcher.start()
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            out, err = proc.communicate()
        if watcher:
            watcher.join(timeout=60)
        log.write_text(f"$ {' '.join(cmd)}\n{out}\n--- stderr\n{err}", encoding="utf-8")
        return subprocess.CompletedProcess(cmd, proc.returncode, out, err)


def read_all(out: Path) -> dict[str, pa.Table]:
    """Every trace table of ``out``, rows in key order."""
    got = {}
    for t in TABLES:
        table = storage.read_table(out, t)
        got[t] = table.sort_by([(k, "ascending") for k in tables.spec(t).key])
    return got


def assert_same_tables(local: dict[str, pa.Table], out: Path) -> None:
    """Every table under ``out`` equals local mode's, row for row."""
    got = read_all(out)
    for t in TABLES:
        assert got[t].num_rows == local[t].num_rows > 0, t
        assert got[t].equals(local[t]), f"{t} differs from local mode"
    report = json.loads((out / "run_report.json").read_text())
    assert report["ok"] is True and not report["failed"]
    assert report["stages"]["trace"]["langs"] == {"en": "done", "uk": "done"}


def error_lines(proc: subprocess.CompletedProcess) -> list[str]:
    """The run's ``Error:`` lines (spark-submit merges the driver's stderr into stdout)."""
    return [ln for ln in (proc.stdout + proc.stderr).splitlines() if ln.startswith("Error: ")]


@pytest.fixture(scope="module")
def local(inputs: Inputs) -> dict[str, pa.Table]:
    """The same trace in local mode (`factroots trace`), the reference for every cluster run."""
    conf, out = inputs.conf("local")
    proc = run([str(Path(sys.executable).parent / "factroots"), "trace", "--conf", str(conf)],
               dict(os.environ), out.parent / "run.log", timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return read_all(out)


def test_readme_commands_give_local_mode_tables(cluster: Cluster, inputs: Inputs, local) -> None:
    conf, out = inputs.conf("readme")
    block = with_settings(readme_block(), MASTER=cluster.master, CONF=str(conf))
    proc = run(["bash", "-euo", "pipefail", "-c", block], cluster.env, out.parent / "run.log")
    assert proc.returncode == 0, proc.stderr[-4000:]
    printed = proc.stdout.splitlines()[0]
    # the printed line is the one that ran: the packed env for the executors, the zip for the
    # code, the driver on its own venv, executors sized to the 1 GB workers
    assert "--archives" in printed and "#environment" in printed and ".zip" in printed
    assert "spark.pyspark.python=./environment/bin/python" in printed
    assert f"spark.pyspark.driver.python={sys.executable}" in printed
    assert "spark.executor.memory=512m" in printed and "spark.executor.cores=1" in printed
    assert "spark.cores.max=2" in printed
    # spark-submit merges the driver Python's stderr into its stdout
    assert "executor check: 2 of 2 executors run factroots" in proc.stdout
    assert_same_tables(local, out)


def test_executors_without_a_dependency_stop_the_run(cluster: Cluster, inputs: Inputs,
                                                     tmp_path: Path) -> None:
    # the executors' Python lacks tokenizers (what the old [spark] extra did to them)
    stub = tmp_path / "stub"
    stub.mkdir()
    (stub / "tokenizers.py").write_text("raise ImportError('not installed here')\n")
    python = tmp_path / "python"
    python.write_text(f"""#!/usr/bin/env bash
case "$*" in *pyspark.daemon*|*pyspark.worker*) export PYTHONPATH={stub}:${{PYTHONPATH:-}} ;; esac
exec {sys.executable} "$@"
""")
    python.chmod(0o755)
    conf, out = inputs.conf("missing_dep")
    proc = run([SUBMIT, "--master", cluster.master, "--conf", str(conf), "--route", "shared",
                "--python", str(python)], cluster.env, out.parent / "run.log", timeout=600)
    assert proc.returncode == 1, proc.stderr[-3000:]  # sys.exit(one line)
    [line] = error_lines(proc)
    assert "an executor runs other code than the driver" in line
    import tokenizers
    assert f"tokenizers {tokenizers.__version__} on the driver, missing (ImportError) there" in line
    assert not (out / "pages").exists()  # stopped before any work


def test_executors_that_fit_no_worker_stop_the_run(cluster: Cluster, inputs: Inputs) -> None:
    conf, out = inputs.conf("too_big")
    proc = run([SUBMIT, "--master", cluster.master, "--conf", str(conf), "--route", "shared",
                "--", "--executor-memory", "2g", "--conf", "spark.factroots.executorTimeout=10"],
               cluster.env, out.parent / "run.log", timeout=600)
    assert proc.returncode == 1, proc.stderr[-3000:]  # sys.exit(one line)
    [line] = error_lines(proc)
    assert "did not run within 10 s" in line and "0 executors registered" in line
    assert "spark.executor.memory=2g" in line and "1024 MB / 1 cores" in line
    assert not (out / "pages").exists()


def _kill_mid_stage(cluster: Cluster, ui: str, killed: dict, notes: list):
    """A watcher: once a stage of the trace runs a task on each executor and has more tasks
    waiting, SIGKILL worker0 by its pid (its executor's running task is lost mid-stage)."""
    def watch(proc: subprocess.Popen) -> None:
        deadline = time.monotonic() + 600
        while proc.poll() is None and time.monotonic() < deadline:
            try:
                [app] = read_json(f"{ui}/api/v1/applications", timeout=2)
                stages = read_json(f"{ui}/api/v1/applications/{app['id']}/stages?status=active",
                                   timeout=2)
            except (OSError, ValueError) as exc:
                notes[:] = [repr(exc)]
                time.sleep(0.2)
                continue
            notes[:] = [repr([(st.get("description"), st.get("numActiveTasks"),
                               st.get("numCompleteTasks"), st.get("numTasks")) for st in stages])]
            for st in stages:
                if ("executor check" not in (st.get("description") or "")
                        and st["numActiveTasks"] == 2
                        and st["numTasks"] - st["numCompleteTasks"] > 2):
                    killed.update(pid=cluster.kill("worker0"), stage=st["name"],
                                  done=st["numCompleteTasks"], tasks=st["numTasks"])
                    return
            time.sleep(0.05)
    return watch


def test_a_worker_killed_mid_stage_changes_nothing(cluster: Cluster, inputs: Inputs,
                                                   local, tmp_path: Path) -> None:
    conf, out = inputs.conf("killed")
    ui = f"http://127.0.0.1:{free_port()}"
    events = tmp_path / "events"
    events.mkdir()
    killed: dict = {}
    notes: list = []  # what the watcher saw last
    proc = run([SUBMIT, "--master", cluster.master, "--conf", str(conf), "--route", "shared",
                "--", "--conf", f"spark.ui.port={ui.rsplit(':', 1)[1]}",
                "--conf", "spark.eventLog.enabled=true",
                # one plain JSON-lines file (Spark 4 rolls and zstd-compresses by default)
                "--conf", "spark.eventLog.rolling.enabled=false",
                "--conf", "spark.eventLog.compress=false",
                "--conf", f"spark.eventLog.dir=file://{events}"],
               cluster.env, out.parent / "run.log", on_start=_kill_mid_stage(cluster, ui, killed, notes))
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert killed, f"no stage ran on both executors at once: nothing was killed ({notes})"
    assert killed["done"] < killed["tasks"]  # mid-stage: tasks were left
    # Spark saw the executor go and reran what it was running
    log = "\n".join(p.read_text() for p in events.rglob("*")
                    if p.is_file() and not p.name.startswith("."))
    evs = [json.loads(ln) for ln in log.splitlines() if ln.strip()]
    assert any(e["Event"] == "SparkListenerExecutorRemoved" for e in evs)
    lost = [e for e in evs if e["Event"] == "SparkListenerTaskEnd"
            and e["Task End Reason"]["Reason"] == "ExecutorLostFailure"]
    assert lost, f"no task was lost with the worker ({killed})"
    assert cluster.alive_workers() == 1
    assert_same_tables(local, out)
