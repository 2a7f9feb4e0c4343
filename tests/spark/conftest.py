"""One session-scoped local[2] Spark session for every Spark test (skipped without Java)."""

from __future__ import annotations

import os
import shutil
import sys

import pytest


@pytest.fixture(scope="session")
def spark():
    """A local[2] SparkSession shared by all tests of tests/spark."""
    if shutil.which("java") is None and not os.environ.get("JAVA_HOME"):
        pytest.skip("java is not installed")
    pyspark = pytest.importorskip("pyspark")
    os.environ["PYSPARK_PYTHON"] = sys.executable
    os.environ["PYSPARK_DRIVER_PYTHON"] = sys.executable
    from pyspark.sql import SparkSession

    from factroots.trace.job import JAVA_OPTS, QUICK_JIT

    session = (SparkSession.builder.master("local[2]").appName("factroots-tests")
               .config("spark.sql.shuffle.partitions", "2")
               .config("spark.default.parallelism", "2")
               .config("spark.ui.enabled", "false")
               .config("spark.ui.showConsoleProgress", "false")
               .config("spark.driver.bindAddress", "127.0.0.1")
               .config("spark.driver.host", "127.0.0.1")
               .config("spark.sql.session.timeZone", "UTC")
               .config("spark.driver.memory", "1g")
               .config("spark.sql.sources.partitionOverwriteMode", "dynamic")
               .config("spark.sql.execution.arrow.maxRecordsPerBatch", "256")
               .config(JAVA_OPTS, QUICK_JIT)  # as the trace job runs
               .getOrCreate())
    session.sparkContext.setLogLevel("ERROR")
    assert pyspark.__version__.startswith("4")
    yield session
    session.stop()
