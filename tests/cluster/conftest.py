"""A Spark standalone cluster on 127.0.0.1 for tests/cluster: one master and two workers
(1 core, 1 GB each) started from the installed pyspark's ``bin/spark-class``, stopped by the
fixture's finaliser (also when a test fails); plus the inputs every run of the tier shares."""

from __future__ import annotations

import bz2
import os
import shutil
import sys

import pytest
from standalone import (
    LANGS,
    PAGES_PER_STREAM,
    Cluster,
    Inputs,
    free_port,
    multistream,
    read_json,
    spark_home,
    start,
    wait_for,
)


@pytest.fixture(scope="session")
def cluster(tmp_path_factory) -> Cluster:
    """A master and two workers on 127.0.0.1 for the whole tier, stopped at its end."""
    if shutil.which("java") is None and not os.environ.get("JAVA_HOME"):
        pytest.skip("java is not installed")
    pytest.importorskip("pyspark")
    home = tmp_path_factory.mktemp("standalone")
    port, ui_port = free_port(), free_port()
    env = {**os.environ, "SPARK_HOME": str(spark_home()), "SPARK_LOCAL_IP": "127.0.0.1",
           "SPARK_MASTER_WEBUI_PORT": str(ui_port), "SPARK_DAEMON_MEMORY": "256m",
           "SPARK_LOG_DIR": str(home / "logs"), "SPARK_WORKER_DIR": str(home / "work"),
           "PYSPARK_PYTHON": sys.executable}
    c = Cluster(f"spark://127.0.0.1:{port}", f"http://127.0.0.1:{ui_port}", env, home)
    try:
        start(c, "master", ["org.apache.spark.deploy.master.Master", "--host", "127.0.0.1",
                             "--port", str(port), "--webui-port", str(ui_port)])
        wait_for("the master's web UI", lambda: read_json(c.ui + "/json/")["status"] == "ALIVE",
              120, c)
        for i in (0, 1):
            start(c, f"worker{i}", ["org.apache.spark.deploy.worker.Worker", "--host",
                                     "127.0.0.1", "--cores", "1", "--memory", "1g",
                                     "--webui-port", str(free_port()),
                                     "--work-dir", str(home / f"work{i}"), c.master])
        wait_for("two alive workers", lambda: c.alive_workers() == 2, 120, c)
        yield c
    finally:
        c.stop()


@pytest.fixture(scope="session")
def inputs(tmp_path_factory) -> Inputs:
    """Two bundled samples cut into small streams, a WordPiece tokenizer trained in code on the
    English one (the executors need `tokenizers` for the chunks), and the facts."""
    from tokenizers import BertWordPieceTokenizer

    from factroots.config import load_config
    from factroots.facts import job as facts_job
    from factroots.text.samples import sample_dump

    d = tmp_path_factory.mktemp("cluster_inputs")
    for lg in LANGS:
        multistream(sample_dump(lg), d / f"{lg}wiki-ms-pages-articles-multistream.xml.bz2",
                    PAGES_PER_STREAM)
    with bz2.open(sample_dump("en"), "rt", encoding="utf-8") as f:
        text = f.read(2_000_000).split("\n")
    tok = BertWordPieceTokenizer(lowercase=False)
    tok.train_from_iterator(text, vocab_size=3000, show_progress=False)
    tok.save(str(d / "tok.json"))
    facts_job.run(load_config(None, {"out": str(d / "facts_out"), "langs": LANGS}))
    return Inputs(d, d / "facts_out")
