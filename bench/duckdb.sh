#!/usr/bin/env bash
# bench/duckdb.sh — zflow against DuckDB, both as whole processes, on the same
# generated CSV file, with hyperfine. Two tasks:
#   convert  CSV → Parquet                    (bench/pipelines/csv_to_parquet.yaml)
#   filter   CSV → filter + computed column → Parquet (bench/pipelines/filter_project.yaml)
# DuckDB runs the same work as SQL through @duckdb/node-api (bench/duckdb/run.mjs)
# with SET threads=$THREADS. Both write snappy Parquet; their row counts are read
# back with DuckDB and must agree, or the script fails.
#
# Writes bench/results/duckdb.{json,md,png} and the raw hyperfine exports under
# bench/results/raw/. Run from anywhere:   bash bench/duckdb.sh
# Knobs (environment): ROWS (10000000), RUNS (5), WARMUP (1), THREADS (2),
# ZFLOW_BENCH_DATA (bench/data, git-ignored), RESULTS (bench/results).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

ROWS=${ROWS:-10000000}
RUNS=${RUNS:-5}
WARMUP=${WARMUP:-1}
THREADS=${THREADS:-2}
DATA=${ZFLOW_BENCH_DATA:-bench/data}
RESULTS=${RESULTS:-bench/results}
export ZFLOW_BENCH_ROWS=$ROWS ZFLOW_BENCH_DATA=$DATA
CSV=$DATA/trades_$ROWS.csv
OUT=$DATA/out
RAW=$RESULTS/raw

log() { printf '== %s\n' "$*" >&2; }
die() { printf 'duckdb.sh: %s\n' "$*" >&2; exit 1; }

# --- tools -------------------------------------------------------------------
missing=()
command -v hyperfine >/dev/null || missing+=(hyperfine)
[ -x /usr/bin/time ] || missing+=(time)
command -v node >/dev/null || missing+=(nodejs npm)
if [ ${#missing[@]} -gt 0 ]; then
  log "installing ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
if [ ! -d bench/duckdb/node_modules/@duckdb/node-api ]; then
  log "installing @duckdb/node-api (npm ci)"
  (cd bench/duckdb && npm ci --no-audit --no-fund --loglevel=error)
fi

log "building bin/zflow and bin/zflow-bench-chart"
"${MAKE:-make}" --no-print-directory build # -checklinkname=0 only if it links io/uring
go build -o bin/zflow-bench-chart ./bench/cmd/chart

# --- data --------------------------------------------------------------------
mkdir -p "$DATA" "$OUT" "$RAW"
if [ ! -s "$CSV" ]; then
  log "generating $CSV ($ROWS rows)"
  bin/zflow run --quiet bench/pipelines/gen_trades.yaml
fi
[ -s "$CSV" ] || die "no data file $CSV"

# --- the tasks ---------------------------------------------------------------
WHERE="qty > 100 AND symbol IN ('SYM0001', 'SYM0002', 'SYM0003', 'SYM0005', 'SYM0008', 'SYM0013', 'SYM0017', 'SYM0019')"
grep -qF "$WHERE" bench/pipelines/filter_project.yaml || die "the predicate in bench/pipelines/filter_project.yaml differs from this script's"
SQL_convert="COPY (SELECT * FROM read_csv('$CSV')) TO '$OUT/duckdb_convert.parquet' (FORMAT parquet, COMPRESSION snappy)"
SQL_filter="COPY (SELECT *, price * qty AS notional FROM read_csv('$CSV') WHERE $WHERE) TO '$OUT/duckdb_filter.parquet' (FORMAT parquet, COMPRESSION snappy)"
SQL_startup="SELECT 1"
ZF_startup="bin/zflow run --quiet bench/pipelines/startup.yaml"
ZF_convert="bin/zflow run --quiet bench/pipelines/csv_to_parquet.yaml"
ZF_filter="bin/zflow run --quiet bench/pipelines/filter_project.yaml"
DK="node bench/duckdb/run.mjs --threads $THREADS"

duck() { $DK --print "$1"; }
loadavg() { cut -d' ' -f1-3 /proc/loadavg; }

LOAD_START=$(loadavg)
: >"$RAW/rss.tsv"
: >"$RAW/counts.tsv"
for task in startup convert filter; do
  zf_var=ZF_$task sql_var=SQL_$task
  zf_cmd=${!zf_var}
  dk_cmd="$DK \"${!sql_var}\""
  log "$task: hyperfine --warmup $WARMUP --runs $RUNS"
  hyperfine --warmup "$WARMUP" --runs "$RUNS" --style basic \
    --export-json "$RAW/hyperfine_$task.json" \
    -n zflow "$zf_cmd" -n duckdb "$dk_cmd" >&2
  log "$task: peak RSS (/usr/bin/time -f %M)"
  /usr/bin/time -f %M -o "$RAW/rss_zflow_$task.txt" bash -c "$zf_cmd" >/dev/null
  /usr/bin/time -f %M -o "$RAW/rss_duckdb_$task.txt" bash -c "$dk_cmd" >/dev/null
  printf '%s\tzflow\t%s\n%s\tduckdb\t%s\n' "$task" "$(tail -n1 "$RAW/rss_zflow_$task.txt")" \
    "$task" "$(tail -n1 "$RAW/rss_duckdb_$task.txt")" >>"$RAW/rss.tsv"
  rm -f "$RAW/rss_zflow_$task.txt" "$RAW/rss_duckdb_$task.txt"
  if [ "$task" = startup ]; then
    printf 'startup\t0\t0\n' >>"$RAW/counts.tsv"
    continue
  fi
  zc=$(duck "SELECT count(*) FROM '$OUT/zflow_$task.parquet'")
  dc=$(duck "SELECT count(*) FROM '$OUT/duckdb_$task.parquet'")
  printf '%s\t%s\t%s\n' "$task" "$zc" "$dc" >>"$RAW/counts.tsv"
  log "$task: rows zflow=$zc duckdb=$dc"
  [ "$zc" = "$dc" ] || die "$task: zflow wrote $zc rows, DuckDB $dc — the outputs differ"
  if [ "$task" = convert ] && [ "$zc" != "$ROWS" ]; then die "convert: $zc rows written, want $ROWS"; fi
done
LOAD_END=$(loadavg)

log "report"
bin/zflow-bench-chart report \
  -raw "$RAW" -out "$RESULTS" -rows "$ROWS" -runs "$RUNS" -warmup "$WARMUP" -threads "$THREADS" \
  -meta "command=bash bench/duckdb.sh (ROWS=$ROWS RUNS=$RUNS WARMUP=$WARMUP THREADS=$THREADS)" \
  -meta "csv=$CSV ($(stat -c %s "$CSV") bytes)" \
  -meta "cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'), $(nproc) CPUs" \
  -meta "kernel=$(uname -r)" \
  -meta "zflow=$(bin/zflow version 2>&1 | head -n1)" \
  -meta "go=$(go env GOVERSION)" \
  -meta "duckdb=$(duck 'SELECT version()') via @duckdb/node-api $(node -p "require('./bench/duckdb/node_modules/@duckdb/node-api/package.json').version"), node $(node --version)" \
  -meta "hyperfine=$(hyperfine --version | cut -d' ' -f2)" \
  -meta "git=$(git rev-parse --short HEAD 2>/dev/null || echo none)$(git diff --quiet HEAD -- 2>/dev/null || echo ' (dirty)')" \
  -meta "loadavg=$LOAD_START -> $LOAD_END" \
  -meta "zflow_startup=$ZF_startup" -meta "duckdb_startup=$DK \"$SQL_startup\"" \
  -meta "zflow_convert=$ZF_convert" -meta "zflow_filter=$ZF_filter" \
  -meta "duckdb_convert=$DK \"$SQL_convert\"" -meta "duckdb_filter=$DK \"$SQL_filter\""
bin/zflow-bench-chart png -in "$RESULTS/duckdb.json" -out "$RESULTS/duckdb.png"
cat "$RESULTS/duckdb.md"
