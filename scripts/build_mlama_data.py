"""Build the mLAMA 1.1 package data in src/factroots/data/mlama/ from the release tarballs.

Run with: python scripts/build_mlama_data.py [--mlama TAR] [--candidates TAR] [--out DIR]

Reads ``mlama1.1.tar.gz`` (``mlama1.1/<lang>/<relation>.jsonl``, ``<lang>/templates.jsonl``) and
``mlama1.1-candidates.tar.gz`` (``TREx_multilingual_objects/<lang>.json``,
``GoogleRE_objects/<lang>.json``) with the same reader that ``--mlama-dir`` uses, refuses any
unreadable line, and writes a faithful copy as zstd Parquet: every triple file, every template
line (date_of_birth and the relations without triples included) and every candidate list entry
(duplicates included), so that the method's choices stay in the facts stage, not in the data.
``triples.parquet`` is sorted by (relation, lineid, lang): rows of one fact lie together, which
makes it 40 % smaller than sorting by language. Also writes counts.json, CHECKSUMS and the
licence notice. Default inputs: ../shared/data/mlama beside the repository.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import tarfile
import tempfile
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from factroots.facts.sources import (
    CANDIDATE_SOURCES,
    RAW_CANDIDATES,
    RAW_TEMPLATES,
    RAW_TRIPLES,
    DirSource,
    candidate_rows,
)

SHARED = ROOT.parent / "shared" / "data" / "mlama"
EXPECTED = {"triples": 843_143, "langs": 53, "relations": 43, "uuids": 37_535}
NOTICE = """# Data licences: mLAMA 1.1 shipped in factroots

The files in this folder are a format conversion (JSON Lines to Parquet; no row changed, added
or removed) of two third-party data sets. factroots' code is Apache-2.0; these data are not.

## triples.parquet, templates.parquet: mLAMA 1.1
- mLAMA: Nora Kassner, Philipp Dufter and Hinrich Schütze. "Multilingual LAMA: Investigating
  Knowledge in Multilingual Pretrained Language Models". EACL 2021.
  https://github.com/norakassner/mlama
- Licence: **Creative Commons Attribution-NonCommercial-ShareAlike 4.0 International
  (CC BY-NC-SA 4.0)**, https://creativecommons.org/licenses/by-nc-sa/4.0/ .
  Derived from T-REx and Google-RE (LAMA, Petroni et al. 2019) with Wikidata labels.
- Copy used: github.com/xzhao-tkl/fact-cl, `datasets/mlama1.1/`, commit 3e50a5ab (2024-04-04),
  identical in size to the official mLAMA 1.1 release.

## candidates.parquet: mLAMA candidate object lists
- From github.com/norakassner/mlama, `data/TREx_multilingual_objects/` and
  `data/GoogleRE_objects/`, commit bc51dee1 (2024-01-22); the 53 languages of mLAMA 1.1.
- Licence: **Creative Commons Attribution-NonCommercial 4.0 International (CC BY-NC 4.0)**,
  https://creativecommons.org/licenses/by-nc/4.0/ .

Non-commercial use only. If you redistribute these files, keep this notice, credit the authors
above, and (for mLAMA) share adaptations under the same licence.
"""


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def read_all(mlama_tar: Path, cand_tar: Path, tmp: Path) -> tuple[pa.Table, pa.Table, pa.Table]:
    for tar in (mlama_tar, cand_tar):
        with tarfile.open(tar) as tf:
            tf.extractall(tmp, filter="data")
    src = DirSource(tmp / "mlama1.1")
    triples, templates, candidates = [], [], []
    for lang in src.langs():
        raw = src.read(lang)
        rejects = raw.triple_rejects + raw.template_rejects
        if rejects:
            sys.exit(f"{lang}: unreadable lines {dict(rejects)}; the shipped data must be clean")
        triples.append(raw.triples)
        templates.append(raw.templates)
        rows = []
        for sub, source in CANDIDATE_SOURCES.items():
            rows += candidate_rows(tmp / "mlama1.1-candidates" / sub / f"{lang}.json", lang, source)
        candidates.append(pa.Table.from_pylist(rows, schema=RAW_CANDIDATES))
    t = pa.concat_tables(triples).cast(RAW_TRIPLES)
    t = t.take(pc.sort_indices(t, [("relation", "ascending"), ("lineid", "ascending"),
                                   ("lang", "ascending")]))
    return t, pa.concat_tables(templates).cast(RAW_TEMPLATES), pa.concat_tables(candidates)


def counts_of(triples: pa.Table, templates: pa.Table, candidates: pa.Table) -> dict:
    per: dict[str, dict[str, int]] = {}
    for row in triples.group_by(["lang", "relation"]).aggregate([("uuid", "count")]).to_pylist():
        per.setdefault(row["lang"], {})[row["relation"]] = row["uuid_count"]
    tpl: dict[str, list[str]] = {}
    for lang, rel in zip(templates["lang"].to_pylist(), templates["relation"].to_pylist()):
        tpl.setdefault(lang, []).append(rel)
    cand = candidates.group_by("lang").aggregate([("candidate", "count")]).to_pylist()
    return {
        "triples": {lg: dict(sorted(r.items())) for lg, r in sorted(per.items())},
        "templates": {lg: sorted(r) for lg, r in sorted(tpl.items())},
        "candidates": {r["lang"]: r["candidate_count"] for r in sorted(cand, key=str)},
        "totals": {"triples": triples.num_rows, "langs": len(per),
                   "relations": len(set(triples["relation"].to_pylist())),
                   "uuids": len(pc.unique(triples["uuid"])), "templates": templates.num_rows,
                   "candidates": candidates.num_rows},
    }


def write(out: Path, triples: pa.Table, templates: pa.Table, candidates: pa.Table,
          sources: dict) -> None:
    out.mkdir(parents=True, exist_ok=True)
    opts = {"compression": "zstd", "compression_level": 19, "row_group_size": 1 << 20,
            "dictionary_pagesize_limit": 8 << 20}
    for name, t in (("triples", triples), ("templates", templates), ("candidates", candidates)):
        pq.write_table(t, out / f"{name}.parquet", **opts)
    counts = counts_of(triples, templates, candidates)
    counts["sources"] = sources
    bad = {k: (counts["totals"][k], v) for k, v in EXPECTED.items() if counts["totals"][k] != v}
    if bad:
        sys.exit(f"counts differ from mLAMA 1.1 (got, expected): {bad}")
    (out / "counts.json").write_text(json.dumps(counts, indent=1, ensure_ascii=False) + "\n",
                                     encoding="utf-8")
    (out / "LICENSE-DATA.md").write_text(NOTICE, encoding="utf-8")
    lines = [f"{sha256(out / n)}  {n}" for n in
             ("triples.parquet", "templates.parquet", "candidates.parquet", "counts.json")]
    (out / "CHECKSUMS").write_text("\n".join(lines) + "\n", encoding="utf-8")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mlama", type=Path, default=SHARED / "mlama1.1.tar.gz")
    ap.add_argument("--candidates", type=Path, default=SHARED / "mlama1.1-candidates.tar.gz")
    ap.add_argument("--out", type=Path, default=ROOT / "src" / "factroots" / "data" / "mlama")
    args = ap.parse_args()
    sources = {p.name: sha256(p) for p in (args.mlama, args.candidates)}
    with tempfile.TemporaryDirectory() as tmp:
        tables = read_all(args.mlama, args.candidates, Path(tmp))
    write(args.out, *tables, sources)
    size = sum(f.stat().st_size for f in args.out.iterdir())
    print(f"wrote {args.out}: {tables[0].num_rows} triples, {size / 1e6:.1f} MB")


if __name__ == "__main__":
    main()
