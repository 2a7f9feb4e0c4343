"""Helpers of tests/cluster: a standalone cluster's processes and URLs, free ports, and the
inputs every trace run of the tier shares (dumps cut into small streams, facts, a preset)."""

from __future__ import annotations

import bz2
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
LANGS = ["en", "uk"]
PAGES_PER_STREAM = 3      # small streams: each dump becomes several tasks (a stage to kill)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def read_json(url: str, timeout: float = 5.0) -> dict | list:
    """A JSON page of the cluster (the master's, a worker's, the driver's REST API)."""
    with urllib.request.urlopen(url, timeout=timeout) as resp:
        return json.loads(resp.read().decode("utf-8"))


@dataclass
class Cluster:
    """A running standalone cluster: its URLs, the environment its clients need, its pids."""

    master: str
    ui: str
    env: dict
    home: Path
    procs: dict = field(default_factory=dict)  # name -> Popen (each leads its process group)

    def alive_workers(self) -> int:
        return int(read_json(self.ui + "/json/")["aliveworkers"])

    def kill(self, name: str) -> int:
        """SIGKILL one process (a worker) by its pid, as a machine that dies; returns the pid."""
        proc = self.procs[name]
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        return proc.pid

    def stop(self) -> None:
        """Stop every process group this fixture started (workers, their executors, master)."""
        for proc in reversed(list(self.procs.values())):
            for sig in (signal.SIGTERM, signal.SIGKILL):
                try:
                    os.killpg(proc.pid, sig)
                except ProcessLookupError:
                    break
                try:
                    proc.wait(timeout=15)
                    break
                except subprocess.TimeoutExpired:
                    continue


def spark_home() -> Path:
    import pyspark
    return Path(pyspark.__file__).parent


def start(c: Cluster, name: str, args: list[str]) -> None:
    log = open(c.home / f"{name}.log", "wb")  # noqa: SIM115 - closed with the process
    c.procs[name] = subprocess.Popen(
        [str(spark_home() / "bin" / "spark-class"), *args], env=c.env, cwd=c.home,
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


def wait_for(what: str, ok, timeout: float, c: Cluster) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if ok():
                return
        except OSError:
            pass
        for name, p in c.procs.items():
            if p.poll() is not None:
                raise RuntimeError(f"{name} exited: {(c.home / f'{name}.log').read_text()[-2000:]}")
        time.sleep(0.5)
    raise TimeoutError(f"{what} within {timeout} s")


def multistream(src: Path, dst: Path, per_stream: int) -> Path:
    """``src`` re-cut into bz2 streams of ``per_stream`` pages each, with its index."""
    xml = bz2.decompress(src.read_bytes())
    pages = list(re.finditer(rb"[ \t]*<page>.*?</page>\n?", xml, re.S))
    head, tail = xml[:pages[0].start()], xml[pages[-1].end():]
    index = []
    with open(dst, "wb") as out:
        out.write(bz2.compress(head))
        for i in range(0, len(pages), per_stream):
            group = pages[i:i + per_stream]
            off = out.tell()
            for m in group:
                pid = re.search(rb"<id>(\d+)</id>", m.group()).group(1).decode()
                title = re.search(rb"<title>(.*?)</title>", m.group(), re.S).group(1).decode()
                index.append(f"{off}:{pid}:{title}")
            out.write(bz2.compress(b"".join(m.group() for m in group)))
        out.write(bz2.compress(tail))
    from factroots.text.multistream import index_path_for
    index_path_for(dst).write_bytes(bz2.compress(("\n".join(index) + "\n").encode("utf-8")))
    return dst


@dataclass
class Inputs:
    """What every trace run of the tier reads: dumps, a tokenizer, facts to copy into ``out``."""

    folder: Path
    facts_out: Path

    def conf(self, name: str) -> tuple[Path, Path]:
        """A fresh ``out`` holding the facts, and a preset writing into it."""
        out = self.folder / name / "out"
        shutil.copytree(self.facts_out, out)
        conf = {"out": str(out), "langs": LANGS, "probe": {"model": "none"},
                "trace": {"dumps": {lg: [str(self.folder / f"{lg}wiki-ms-pages-articles-"
                                             "multistream.xml.bz2")] for lg in LANGS},
                          "partitions_per_file": 4, "write_mentions": True,
                          "chunk_tokenizer": str(self.folder / "tok.json")}}
        path = self.folder / name / "trace.yaml"
        path.write_text(yaml.safe_dump(conf), encoding="utf-8")
        return path, out


