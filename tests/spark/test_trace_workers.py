"""How the trace stage runs its JVM and its Python workers: the local JIT setting, the frozen
worker heap."""

from __future__ import annotations

import gc

import pyarrow as pa
import pytest

from factroots.config import load_config
from factroots.errors import ConfigError
from factroots.trace import job, pyworker

pytestmark = pytest.mark.spark
JAVA = job.JAVA_OPTS


def test_local_java_options_put_the_users_last() -> None:
    assert job.local_java_options("quick") == "-XX:TieredStopAtLevel=1"
    assert job.local_java_options("full") == ""
    assert job.local_java_options("quick", " -Xss4m ") == "-XX:TieredStopAtLevel=1 -Xss4m"
    assert job.local_java_options("full", "-Xss4m") == "-Xss4m"


class _Builder:
    """Records what ``job.session`` asks of ``SparkSession.builder``."""

    def __init__(self) -> None:
        self.conf: dict[str, str] = {}

    def appName(self, _name: str) -> _Builder:  # noqa: N802 - Spark's name
        return self

    def master(self, master: str) -> _Builder:
        self.conf["master"] = master
        return self

    def config(self, key: str, value: str) -> _Builder:
        self.conf[key] = value
        return self

    def getOrCreate(self) -> dict[str, str]:  # noqa: N802
        return self.conf


@pytest.mark.parametrize(("master", "jit", "extra", "want"), [
    ("local[2]", "quick", None, "-XX:TieredStopAtLevel=1"),
    ("local[2]", "quick", "-Xss4m", "-XX:TieredStopAtLevel=1 -Xss4m"),
    ("local[2]", "full", None, None),
    ("spark://head:7077", "quick", "-Xss4m", "-Xss4m"),  # a cluster's driver: the user's only
])
def test_session_sets_the_jit_in_local_mode_only(monkeypatch, master, jit, extra, want) -> None:
    conf = {JAVA: extra} if extra else {}
    cfg = load_config(None, {"trace.spark_master": master, "trace.local_jit": jit,
                             "trace.spark_conf": conf})
    builder = _Builder()
    monkeypatch.setattr(job.SparkSession, "builder", builder)
    assert job.session(cfg).get(JAVA) == want


def test_local_jit_is_checked_on_load() -> None:
    with pytest.raises(ConfigError, match="local_jit"):
        load_config(None, {"trace.local_jit": "c2"})


def test_the_flag_reaches_the_local_jvm(spark) -> None:
    """The builder setting the trace job uses does reach a JVM that PySpark starts (the test
    session is built the same way)."""
    bean = spark.sparkContext._jvm.java.lang.management.ManagementFactory.getRuntimeMXBean()
    assert "-XX:TieredStopAtLevel=1" in list(bean.getInputArguments())


def test_workers_freeze_their_import_heap(spark) -> None:
    """In a Spark task the heap alive at its start is frozen (the worker's per-task
    gc.collect() then skips it); on the driver nothing is frozen."""
    def _freeze_count(batches):  # nested: pickled by value, the workers cannot import tests/
        import gc
        for b in batches:
            yield pa.RecordBatch.from_pydict({"frozen": [gc.get_freeze_count()] * b.num_rows})

    rows = (spark.range(0, 64, 1, 4).mapInArrow(pyworker.frozen(_freeze_count), "frozen bigint")
            .collect())
    assert len(rows) == 64 and min(r["frozen"] for r in rows) > 1000
    before = gc.get_freeze_count()
    batch = pa.RecordBatch.from_pydict({"x": [1, 2]})
    assert [b.num_rows for b in pyworker.frozen(_freeze_count)(iter([batch]))] == [2]
    assert gc.get_freeze_count() == before
