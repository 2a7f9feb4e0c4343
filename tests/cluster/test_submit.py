"""spark_jobs/submit.sh --print for the routes the standalone tests do not run (YARN, local),
and its one-line refusals. No cluster needed; the packed env is reused from the build folder."""

from __future__ import annotations

import shlex
import subprocess
import sys

import pytest
from standalone import ROOT

pytestmark = pytest.mark.cluster
SUBMIT = str(ROOT / "spark_jobs" / "submit.sh")


def printed(*args: str) -> list[str]:
    proc = subprocess.run([SUBMIT, *args, "--print"], capture_output=True, text=True, cwd=ROOT,
                          env={"PATH": "/usr/bin:/bin", "PYTHON": sys.executable}, timeout=600)
    assert proc.returncode == 0, proc.stderr
    [line] = proc.stdout.splitlines()
    return shlex.split(line)


def test_yarn_client_mode_ships_the_zip_and_the_packed_env() -> None:
    words = printed("--master", "yarn", "--conf", "conf/cluster.yaml")
    assert words[:2] == ["cd", str(ROOT / "build" / "spark" / "driver")]
    assert words[words.index("--master") + 1] == "yarn"
    assert words[words.index("--deploy-mode") + 1] == "client"
    archive = words[words.index("--archives") + 1]
    assert archive.endswith(".tar.gz#environment")
    assert words[words.index("--py-files") + 1].endswith(".zip")
    assert "spark.pyspark.python=./environment/bin/python" in words
    assert f"spark.pyspark.driver.python={sys.executable}" in words
    assert not any(w.startswith("spark.executor.memory") for w in words)  # not fitted on YARN
    assert words[-2:] == ["--conf", str(ROOT / "conf" / "cluster.yaml")]
    # the driver's ./environment is the driver's venv (Spark plans the dump source there)
    env = ROOT / "build" / "spark" / "driver" / "environment"
    assert env.resolve() == __import__("pathlib").Path(sys.prefix).resolve()
    # the packed env holds the executor extra, not pyspark
    tar = subprocess.run(["tar", "-tzf", archive.split("#")[0]], capture_output=True,
                         text=True, check=True).stdout
    assert "/site-packages/tokenizers/" in tar and "/site-packages/pyarrow/" in tar
    assert "/site-packages/pyspark/" not in tar and "/site-packages/torch/" not in tar


def test_local_mode_runs_everything_on_the_driver_python() -> None:
    words = printed("--master", "local[2]", "--conf", "conf/default.yaml", "--langs", "en")
    assert "--archives" not in words and "--py-files" not in words
    assert f"spark.pyspark.python={sys.executable}" in words
    assert words[-2:] == ["--langs", "en"]


def test_refusals_are_one_line() -> None:
    for args, says in ((["--conf", "conf/cluster.yaml"], "--master is required"),
                       (["--master", "yarn", "--conf", "c.yaml", "--route", "x"],
                        "--route must be packed or shared"),
                       (["--master", "yarn", "--bogus"], "unknown option --bogus")):
        proc = subprocess.run([SUBMIT, *args], capture_output=True, text=True, cwd=ROOT,
                              env={"PATH": "/usr/bin:/bin", "PYTHON": sys.executable})
        assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and says in proc.stderr
