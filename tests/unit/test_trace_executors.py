"""The executor check's parts without a cluster: the code fingerprint (the same from the code
zip as from the source tree), the comparison and its one-line error, and executor sizing."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from factroots.errors import ConfigError
from factroots.trace import executors

ROOT = Path(__file__).resolve().parents[2]


def _worker(mem: int, cores: int, state: str = "ALIVE") -> dict:
    return {"memory": mem, "cores": cores, "state": state}


def test_the_code_zip_has_the_fingerprint_of_the_driver_code(tmp_path: Path) -> None:
    zipped = subprocess.run([sys.executable, str(ROOT / "spark_jobs" / "package.py"), "zip",
                             "--build", str(tmp_path)], capture_output=True, text=True,
                            check=True).stdout.strip()
    assert zipped.endswith(f"-{executors.code_fingerprint()}.zip")
    # imported from the zip, as an executor does, the code hashes the same
    probe = ("import sys; sys.path.insert(0, sys.argv[1]); import factroots.trace.executors as e;"
             "import json; print(json.dumps([e.__file__, e.environment()]))")
    got = subprocess.run([sys.executable, "-c", probe, zipped], capture_output=True, text=True,
                         check=True, cwd=tmp_path)
    where, env = json.loads(got.stdout)
    assert where.startswith(zipped)
    assert env == executors.environment()


def test_the_code_zip_reads_its_shipped_data(tmp_path: Path) -> None:
    # the cleaner reads data/namespaces from the package: from a zip it must still find it
    # (a Path(__file__) read failed there and every page became a clean_error reject)
    zipped = subprocess.run([sys.executable, str(ROOT / "spark_jobs" / "package.py"), "zip",
                             "--build", str(tmp_path)], capture_output=True, text=True,
                            check=True).stdout.strip()
    probe = ("import sys, json; sys.path.insert(0, sys.argv[1]); from factroots.text import "
             "wikitext as w; print(json.dumps([w.__file__, w.clean_page("
             "'Kyiv [[Файл:K.jpg|thumb|x]] is a [[city]].', 40, lang='uk')]))")
    got = subprocess.run([sys.executable, "-c", probe, zipped], capture_output=True, text=True,
                         check=True, cwd=tmp_path)
    where, (paras, reject) = json.loads(got.stdout)
    assert where.startswith(zipped)
    assert reject is None and paras == ["Kyiv is a city."]


def test_one_changed_file_changes_the_fingerprint(tmp_path: Path) -> None:
    import shutil

    import factroots
    pkg = tmp_path / "factroots"
    shutil.copytree(Path(factroots.__file__).parent, pkg,
                    ignore=shutil.ignore_patterns("__pycache__", "data"))
    probe = ("import sys; sys.path.insert(0, sys.argv[1]); import factroots.trace.executors as e;"
             "print(e.code_fingerprint())")
    fp = [subprocess.run([sys.executable, "-c", probe, str(tmp_path)], capture_output=True,
                         text=True, check=True).stdout.strip()]
    (pkg / "text" / "normalize.py").write_text((pkg / "text" / "normalize.py").read_text() + "\n#")
    fp.append(subprocess.run([sys.executable, "-c", probe, str(tmp_path)], capture_output=True,
                             text=True, check=True).stdout.strip())
    assert fp[0] == executors.code_fingerprint() != fp[1]


def test_compare_names_every_difference_in_one_line() -> None:
    driver = {"factroots": "0.1.0", "code": "aaa", "tokenizers": "0.23.3", "lxml": "6.1"}
    executors.compare(driver, [dict(driver, where="h:1"), dict(driver)])  # equal: no error
    other = dict(driver, code="bbb", tokenizers="missing (ModuleNotFoundError)", where="h:/w/2")
    with pytest.raises(ConfigError) as exc:
        executors.compare(driver, [dict(driver), other])
    msg = str(exc.value)
    assert "\n" not in msg and "(h:/w/2)" in msg
    assert "code aaa on the driver, bbb there" in msg
    assert "tokenizers 0.23.3 on the driver, missing (ModuleNotFoundError) there" in msg
    assert "lxml" not in msg and "spark_jobs/submit.sh" in msg


def test_an_executor_without_factroots_is_named() -> None:
    with pytest.raises(ConfigError, match=r"cannot import factroots \(h:1: ModuleNotFound"):
        executors.compare({"code": "a"}, [{"error": "ModuleNotFoundError: factroots",
                                           "where": "h:1"}])


def test_fit_takes_half_the_smallest_worker_and_its_cores() -> None:
    state = {"workers": [_worker(8192, 4), _worker(4096, 2), _worker(512, 1, "DEAD")]}
    assert executors.fit(state) == {"spark.executor.memory": "2048m", "spark.executor.cores": "2",
                                    "spark.cores.max": "6",
                                    "spark.scheduler.minRegisteredResourcesRatio": "1.0"}
    big = {"workers": [_worker(64 * 1024, 16)]}
    assert executors.fit(big)["spark.executor.memory"] == "6144m"  # more heap buys nothing
    assert executors.fit({"workers": [_worker(1024, 1)]})["spark.executor.memory"] == "512m"
    assert executors.fit({"workers": [_worker(700, 1)]})["spark.executor.memory"] == "512m"


def test_fit_refuses_clusters_it_cannot_fit() -> None:
    with pytest.raises(ConfigError, match="no alive worker"):
        executors.fit({"workers": [_worker(4096, 2, "DEAD")]})
    with pytest.raises(ConfigError, match="offers 400 MB"):
        executors.fit({"workers": [_worker(400, 1)]})


def test_master_ui_follows_the_master_and_its_port(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SPARK_MASTER_WEBUI_PORT", raising=False)
    assert executors.master_ui("spark://node1:7077") == "http://node1:8080/json/"
    monkeypatch.setenv("SPARK_MASTER_WEBUI_PORT", "18080")
    assert executors.master_ui("spark://a:7077,b:7077") == "http://a:18080/json/"
    with pytest.raises(ConfigError):
        executors.master_ui("yarn")


def test_fit_cli_fails_in_one_line_when_no_master_answers() -> None:
    # nothing listens on port 9 of loopback: refused at once, then the timeout ends it
    proc = subprocess.run([sys.executable, "-m", "factroots.trace.executors", "fit",
                           "spark://127.0.0.1:7077", "--master-ui", "http://127.0.0.1:9",
                           "--timeout", "0"], capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("error: the Spark master at")


def test_unreadable_package_data_is_a_difference(monkeypatch: pytest.MonkeyPatch) -> None:
    from factroots.text import wikitext

    def broken() -> dict:
        raise FileNotFoundError("namespaces.json")

    driver = executors.environment()
    monkeypatch.setattr(wikitext, "namespace_data", broken)
    there = executors.environment()
    assert driver["data"] == "53 namespace languages"
    assert there["data"] == "unreadable (FileNotFoundError)"
    assert executors.differences(driver, there) == [
        "data 53 namespace languages on the driver, unreadable (FileNotFoundError) there"]
