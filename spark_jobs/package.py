"""Build what the executors need, from the driver's own venv (run by spark_jobs/submit.sh).

    python spark_jobs/package.py zip --build build/spark   -> build/spark/factroots-<v>-<code>.zip
    python spark_jobs/package.py env --build build/spark   -> build/spark/factroots-env-<hash>.tar.gz

`zip`: the imported factroots package as a zip for `--py-files` (PySpark puts only .zip, .egg
and .jar files on the executors' path; a .whl is never importable there). Named by the code
fingerprint the executor check compares, so driver and executors provably run the same code.

`env`: a venv holding exactly the `executor` extra of factroots and its dependencies, copied
file by file from this interpreter's site-packages (offline, and the same versions as the
driver by construction), then packed with `venv-pack -p` for `--archives`. It holds neither
pyspark (the workers get it from the Spark installation) nor factroots (the zip carries it).
Both are reused while their name (content hash) is unchanged.
"""

from __future__ import annotations

import argparse
import hashlib
import platform
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

import factroots
from factroots.trace.executors import code_fingerprint

LEAVE_OUT = {"pyspark", "factroots", "py4j"}
ENV_RULES = "env-2: no console scripts, no tests/ folders"  # part of the env's name


def build_zip(build: Path) -> Path:
    """The code zip of the imported factroots package (reused when the code is unchanged)."""
    pkg = Path(factroots.__file__).resolve().parent
    out = build / f"factroots-{factroots.__version__}-{code_fingerprint()}.zip"
    if out.exists():
        return out
    tmp = out.with_suffix(".zip.tmp")
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as zf:
        for f in sorted(pkg.rglob("*")):
            if f.is_file() and "__pycache__" not in f.parts and f.suffix != ".pyc":
                zf.write(f, Path("factroots") / f.relative_to(pkg))
    tmp.replace(out)
    _prune(build, "factroots-*.zip", out)
    return out


def _prune(build: Path, pattern: str, keep: Path) -> None:
    """Remove older builds of the same kind: only the newest is kept."""
    for old in build.glob(pattern):
        if old != keep:
            old.unlink()


def executor_requirements() -> list[Requirement]:
    """The requirements of factroots' `executor` extra, from its installed metadata."""
    reqs = []
    for line in metadata.requires("factroots") or []:
        r = Requirement(line)
        if r.marker is not None and r.marker.evaluate({"extra": "executor"}) \
                and not r.marker.evaluate({"extra": ""}):
            r.marker = None  # chosen: its dependencies are judged without extras
            reqs.append(r)
    if not reqs:
        sys.exit("error: the installed factroots has no `executor` extra "
                 "(fix: reinstall it: pip install -e '.[spark]')")
    return reqs


def closure(reqs: list[Requirement]) -> list[metadata.Distribution]:
    """The installed distributions the requirements need, recursively (no extras)."""
    seen: dict[str, metadata.Distribution] = {}
    todo = list(reqs)
    while todo:
        r = todo.pop()
        name = canonicalize_name(r.name)
        if name in seen or name in LEAVE_OUT:
            continue
        if r.marker is not None and not r.marker.evaluate({"extra": ""}):
            continue
        try:
            dist = metadata.distribution(r.name)
        except metadata.PackageNotFoundError:
            sys.exit(f"error: {r.name} is not installed in {sys.prefix} "
                     f"(fix: pip install -e '.[spark]')")
        if dist.files is None:
            sys.exit(f"error: {r.name} has no RECORD of its files in {sys.prefix} "
                     f"(fix: reinstall it with pip)")
        seen[name] = dist
        todo += [Requirement(x) for x in dist.requires or []]
    return [seen[k] for k in sorted(seen)]


def build_env(build: Path, compress_level: int) -> Path:
    """The packed executor venv (reused when the same distributions would go in)."""
    dists = closure(executor_requirements())
    key = hashlib.sha256(repr([(d.metadata["Name"], d.version) for d in dists]
                              + [sys.version, platform.machine(), ENV_RULES]).encode()).hexdigest()[:12]
    out = build / f"factroots-env-py{sys.version_info[0]}{sys.version_info[1]}-{key}.tar.gz"
    if out.exists():
        return out
    env = build / "executor-env"
    shutil.rmtree(env, ignore_errors=True)
    # the venv's python links to the driver's base interpreter: the executors need the same
    # Python at the same path (the usual rule of venv-pack)
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(env)], check=True)
    site = env / Path(sysconfig.get_path("purelib")).relative_to(sys.prefix)
    for d in dists:
        for f in d.files or []:
            # console scripts and the packages' own test suites: not needed by Spark (the
            # tests are a third of the files every executor would unpack)
            if f.parts and (f.parts[0] == ".." or "tests" in f.parts[:-1]):
                continue
            dst = site / f
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(d.locate_file(f), dst)
    tmp = out.with_name(out.name + ".tmp")
    pack = shutil.which("venv-pack", path=str(Path(sys.executable).parent)) or "venv-pack"
    subprocess.run([pack, "-p", str(env), "-o", str(tmp), "--format", "tar.gz", "--force",
                    "--quiet", "--compress-level", str(compress_level)], check=True)
    tmp.replace(out)
    shutil.rmtree(env)
    _prune(build, "factroots-env-*.tar.gz", out)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("what", choices=("zip", "env"))
    ap.add_argument("--build", default="build/spark", help="folder for the built files")
    ap.add_argument("--compress-level", type=int, default=1, help="gzip level of the env (0-9)")
    args = ap.parse_args()
    build = Path(args.build).resolve()
    build.mkdir(parents=True, exist_ok=True)
    print(build_zip(build) if args.what == "zip" else build_env(build, args.compress_level))


if __name__ == "__main__":
    main()
