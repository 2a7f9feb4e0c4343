#!/usr/bin/env bash
# Build the code zip and the executors' environment, then run (or --print) the exact
# spark-submit line of the trace job. Routes (spark_jobs/README.md):
#   packed  (default): code as a zip (--py-files), the executors' venv packed (--archives)
#   shared           : every node sees this venv at the same path; code as a zip
#   local[*] masters : the driver's Python runs everything (no zip, no env)
# Usage: spark_jobs/submit.sh --master URL [--route packed|shared] [--conf PRESET] [--out DIR]
#        [--langs a,b] [--build DIR] [--master-ui URL] [--python PY] [--print] [-- SPARK-SUBMIT ARGS]
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$HERE")
die() { echo "submit.sh: error: $*" >&2; exit 2; }
abspath() { case "$1" in /*) echo "$1" ;; *) echo "$PWD/$1" ;; esac; }

MASTER="" ROUTE="" CONF="" OUT="" LANGS="" PRINT=0 MASTER_UI="" PY="${PYTHON:-}"
BUILD="$ROOT/build/spark"
EXTRA=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --master) MASTER=$2; shift 2 ;;
    --route) ROUTE=$2; shift 2 ;;
    --conf) CONF=$(abspath "$2"); shift 2 ;;
    --out) OUT=$(abspath "$2"); shift 2 ;;
    --langs) LANGS=$2; shift 2 ;;
    --build) BUILD=$(abspath "$2"); shift 2 ;;
    --master-ui) MASTER_UI=$2; shift 2 ;;
    --python) PY=$(abspath "$2"); shift 2 ;;
    --print) PRINT=1; shift ;;
    --) shift; EXTRA=("$@"); break ;;
    -h|--help) sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown option $1 (see --help)" ;;
  esac
done
[[ -n "$MASTER" ]] || die "--master is required (spark://host:7077, yarn or local[2])"
[[ -n "$CONF" ]] || die "--conf is required (a preset such as conf/cluster.yaml)"

# The driver's Python: --python, $PYTHON, the active venv, else the project's .venv. Not
# resolved through symlinks: a venv's python is a link to the base interpreter.
if [[ -z "$PY" ]]; then
  if [[ -n "${VIRTUAL_ENV:-}" ]]; then PY="$VIRTUAL_ENV/bin/python"
  elif [[ -x "$ROOT/.venv/bin/python" ]]; then PY="$ROOT/.venv/bin/python"
  else die "no Python with factroots found (fix: activate its venv or pass --python)"; fi
fi
[[ -x "$PY" ]] || die "$PY is not an executable Python"

# spark-submit from the pip-installed pyspark: it ships bin/ but needs SPARK_HOME set
if [[ -z "${SPARK_HOME:-}" || ! -x "${SPARK_HOME:-}/bin/spark-submit" ]]; then
  SPARK_HOME=$("$PY" -c 'import os, pyspark; print(os.path.dirname(pyspark.__file__))') ||
    die "pyspark is not installed for $PY (fix: pip install -e '.[spark]')"
fi
export SPARK_HOME

case "$MASTER" in
  local*) ROUTE=local ;;
  *) ROUTE=${ROUTE:-packed} ;;
esac
[[ "$ROUTE" =~ ^(local|packed|shared)$ ]] || die "--route must be packed or shared, not $ROUTE"

ARGS=(--master "$MASTER")
[[ "$MASTER" == yarn ]] && ARGS+=(--deploy-mode client)
ARGS+=(--properties-file "$ROOT/conf/spark-defaults.conf")
RUN_DIR=$PWD
case "$ROUTE" in
  local)
    ARGS+=(--conf "spark.pyspark.python=$PY" --conf "spark.pyspark.driver.python=$PY") ;;
  packed|shared)
    mkdir -p "$BUILD"
    ZIP=$("$PY" "$HERE/package.py" zip --build "$BUILD") || die "building the code zip failed"
    ARGS+=(--py-files "$ZIP" --conf "spark.pyspark.driver.python=$PY")
    if [[ "$ROUTE" == packed ]]; then
      ENV_TGZ=$("$PY" "$HERE/package.py" env --build "$BUILD") ||
        die "building the executors' env failed"
      ARGS+=(--archives "$ENV_TGZ#environment" --conf "spark.pyspark.python=./environment/bin/python")
      # Spark 4 plans Python data sources on the driver with the executors' Python path: in
      # the driver's folder, ./environment is this venv
      PREFIX=$("$PY" -c 'import sys; print(sys.prefix)')
      [[ -x "$PREFIX/bin/python" ]] || die "$PY is not in a venv (fix: run from the project's venv)"
      RUN_DIR="$BUILD/driver"
      mkdir -p "$RUN_DIR"
      ln -sfn "$PREFIX" "$RUN_DIR/environment"
    else
      ARGS+=(--conf "spark.pyspark.python=$PY")
    fi ;;
esac

# Executor size: fitted to a standalone master's workers unless given on the command line
if [[ "$MASTER" == spark://* ]] && ! printf '%s\n' "${EXTRA[@]+"${EXTRA[@]}"}" |
    grep -qE -- '--executor-memory|spark\.executor\.memory'; then
  FIT=$("$PY" -m factroots.trace.executors fit "$MASTER" ${MASTER_UI:+--master-ui "$MASTER_UI"} \
        --timeout "${FACTROOTS_FIT_TIMEOUT:-60}") || exit 2
  read -r -a FIT_ARGS <<< "$FIT"
  ARGS+=("${FIT_ARGS[@]}")
fi

ARGS+=("${EXTRA[@]+"${EXTRA[@]}"}" "$HERE/trace_job.py" --conf "$CONF")
[[ -n "$OUT" ]] && ARGS+=(--out "$OUT")
[[ -n "$LANGS" ]] && ARGS+=(--langs "$LANGS")

if [[ $PRINT == 1 ]]; then
  printf 'cd %q && SPARK_HOME=%q %q' "$RUN_DIR" "$SPARK_HOME" "$SPARK_HOME/bin/spark-submit"
  printf ' %q' "${ARGS[@]}"
  printf '\n'
  exit 0
fi
cd "$RUN_DIR"
exec "$SPARK_HOME/bin/spark-submit" "${ARGS[@]}"
