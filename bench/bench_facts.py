"""Benchmark: the facts stage on all 53 languages of mLAMA 1.1, shipped Parquet vs JSONL.

Run with: python bench/bench_facts.py [--mlama TAR]

Ours: ``factroots.facts.job.run`` on the shipped package data (843,143 triples -> `facts`,
`templates`, `candidates`, 159 partitions with stats), cold (fresh output) and as a rerun (all
partitions skipped); and the same stage reading the unpacked JSONL release (``--mlama-dir``).
Baseline: loading the JSONL release the way fact-cl's MaskedDataset does: for each language
folder and each relation of its templates.jsonl, ``pandas.read_json(lines=True)`` plus the
template join (no checks, no output). The tarball is unpacked before timing. Also prints the
size of the shipped data next to the size of the JSONL release.
"""

from __future__ import annotations

import argparse
import json
import tarfile
import tempfile
import time
from pathlib import Path

import pandas as pd

from factroots.config import load_config
from factroots.facts import job
from factroots.facts.sources import shipped_dir

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "mlama" / "mlama1.1.tar.gz"


def timed(fn) -> tuple[float, object]:
    t0 = time.perf_counter()
    res = fn()
    return time.perf_counter() - t0, res


def baseline(root: Path) -> int:
    """fact-cl's MaskedDataset loop: pandas per relation file, template joined, rows counted."""
    n = 0
    for lang_dir in sorted(p for p in root.iterdir() if p.is_dir()):
        for line in (lang_dir / "templates.jsonl").read_text(encoding="utf-8").splitlines():
            tpl = json.loads(line)
            path = lang_dir / f"{tpl['relation']}.jsonl"
            if not path.exists() or path.stat().st_size == 0:
                continue
            df = pd.read_json(path, lines=True)
            df["sent"] = [tpl["template"].replace("[X]", s) for s in df["sub_label"]]
            n += len(df)
    return n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mlama", type=Path, default=SHARED)
    args = ap.parse_args()
    size = sum(f.stat().st_size for f in shipped_dir().iterdir())
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        cfg = load_config(overrides={"out": str(tmp / "shipped")})
        cold, _ = timed(lambda: job.run(cfg))
        rerun, _ = timed(lambda: job.run(cfg))
        print(f"shipped data: {size / 1e6:.1f} MB in the package")
        print(f"ours, shipped Parquet -> 3 tables x 53 langs: {cold:6.2f} s  (rerun, all skipped: "
              f"{rerun:.2f} s)")
        if not args.mlama.exists():
            print(f"baseline skipped: {args.mlama} not found")
            return
        with tarfile.open(args.mlama) as tf:
            tf.extractall(tmp, filter="data")
        root = tmp / "mlama1.1"
        jsonl = sum(f.stat().st_size for f in root.rglob("*.jsonl"))
        cfg = load_config(overrides={"out": str(tmp / "dir"), "facts.mlama_dir": str(root)})
        ours_dir, _ = timed(lambda: job.run(cfg))
        base, n = timed(lambda: baseline(root))
        print(f"ours, JSONL dir (--mlama-dir) -> 3 tables:   {ours_dir:6.2f} s")
        print(f"baseline, pandas read_json per file ({n} rows, no output): {base:6.2f} s")
        print(f"JSONL release: {jsonl / 1e6:.0f} MB; shipped Parquet is {jsonl / size:.0f}x smaller")


if __name__ == "__main__":
    main()
