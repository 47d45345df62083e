#!/usr/bin/env bash
# bench/duckdb.sh — zflow against DuckDB, both as whole processes, on the same
# generated trades (CSV, NDJSON and Parquet files), with hyperfine. Tasks:
#   csv_parquet   CSV → Parquet                                (csv_to_parquet.yaml)
#   csv_filter    CSV → filter + computed column → Parquet     (filter_project.yaml)
#   pq_filter     Parquet → filter + computed column → Parquet (parquet_filter.yaml)
#   ndjson_parquet NDJSON → Parquet                            (ndjson_to_parquet.yaml)
#   pq_csv        Parquet → CSV                                (parquet_to_csv.yaml)
# each at every thread count of THREADS_LIST, writing zstd Parquet; plus, at the
# largest thread count, start-up alone and the first recorded configuration (CSV
# tasks writing snappy) so the history stays visible. zflow's pipelines carry no
# parallelism hints; both engines get the same threads (zflow settings.threads
# through ZFLOW_BENCH_THREADS, DuckDB SET threads). DuckDB runs the same work as
# SQL through @duckdb/node-api (bench/duckdb/run.mjs). The Parquet input is
# written by DuckDB (zstd, its default row groups), the NDJSON input by zflow.
#
# Every output is compared by the script, read back with DuckDB: the row count
# and, per column, a checksum of the values must be the same on both sides, and
# zflow's rows must be in input order (the trades' ts rises by 1 ms a row, so a
# ts lower than the row before is a row out of order). DuckDB's COPY does not
# always keep input order (seen at 2 threads on Parquet → filter); how many of
# its rows are out of order is recorded, not held against it.
#
# Writes bench/results/duckdb.{json,md,png} and the raw hyperfine exports under
# bench/results/raw/. Run from anywhere:   bash bench/duckdb.sh
# Knobs (environment): ROWS (10000000), RUNS (5), WARMUP (1), THREADS_LIST ("1 2"),
# TASKS (all), ZFLOW_BENCH_DATA (bench/data, git-ignored), RESULTS (bench/results).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

ROWS=${ROWS:-10000000}
RUNS=${RUNS:-5}
WARMUP=${WARMUP:-1}
THREADS_LIST=${THREADS_LIST:-1 2}
TASKS=${TASKS:-csv_parquet csv_filter pq_filter ndjson_parquet pq_csv}
DATA=${ZFLOW_BENCH_DATA:-bench/data}
RESULTS=${RESULTS:-bench/results}
export ZFLOW_BENCH_ROWS=$ROWS ZFLOW_BENCH_DATA=$DATA
CSV=$DATA/trades_$ROWS.csv
NDJSON=$DATA/trades_$ROWS.ndjson
PARQUET=$DATA/trades_$ROWS.parquet
OUT=$DATA/out
RAW=$RESULTS/raw
MAXT=$(printf '%s\n' $THREADS_LIST | sort -n | tail -n1)

log() { printf '== %s\n' "$*" >&2; }
die() { printf 'duckdb.sh: %s\n' "$*" >&2; exit 1; }

# --- tools -------------------------------------------------------------------
. bench/setup.sh

# --- data --------------------------------------------------------------------
mkdir -p "$DATA" "$OUT" "$RAW"
if [ ! -s "$CSV" ]; then
  log "generating $CSV ($ROWS rows)"
  bin/zflow run --quiet bench/pipelines/gen_trades.yaml
fi
[ -s "$CSV" ] || die "no data file $CSV"
DK1="node bench/duckdb/run.mjs --threads $MAXT"
if [ ! -s "$NDJSON" ]; then
  log "writing $NDJSON (zflow)"
  bin/zflow run --quiet bench/pipelines/gen_ndjson.yaml
fi
if [ ! -s "$PARQUET" ]; then
  log "writing $PARQUET (DuckDB, zstd)"
  $DK1 "COPY (SELECT * FROM read_csv('$CSV')) TO '$PARQUET.tmp' (FORMAT parquet, COMPRESSION zstd)"
  mv "$PARQUET.tmp" "$PARQUET"
fi

# --- the tasks ---------------------------------------------------------------
WHERE="qty > 100 AND symbol IN ('SYM0001', 'SYM0002', 'SYM0003', 'SYM0005', 'SYM0008', 'SYM0013', 'SYM0017', 'SYM0019')"
for f in filter_project parquet_filter; do
  grep -qF "$WHERE" "bench/pipelines/$f.yaml" || die "the predicate in bench/pipelines/$f.yaml differs from this script's"
done
# task id → pipeline, title, chart label, DuckDB's SELECT, output kind
declare -A PIPE TITLE LABEL SELECT KIND
PIPE[csv_parquet]=csv_to_parquet    TITLE[csv_parquet]="CSV → Parquet (zstd)"                                LABEL[csv_parquet]="csv>pq"
PIPE[csv_filter]=filter_project     TITLE[csv_filter]="CSV → filter + computed column → Parquet (zstd)"      LABEL[csv_filter]="csv>flt>pq"
PIPE[pq_filter]=parquet_filter      TITLE[pq_filter]="Parquet → filter + computed column → Parquet (zstd)"   LABEL[pq_filter]="pq>flt>pq"
PIPE[ndjson_parquet]=ndjson_to_parquet TITLE[ndjson_parquet]="NDJSON → Parquet (zstd)"                     LABEL[ndjson_parquet]="json>pq"
PIPE[pq_csv]=parquet_to_csv         TITLE[pq_csv]="Parquet → CSV"                                            LABEL[pq_csv]="pq>csv"
SELECT[csv_parquet]="SELECT * FROM read_csv('$CSV')"
SELECT[csv_filter]="SELECT *, price * qty AS notional FROM read_csv('$CSV') WHERE $WHERE"
SELECT[pq_filter]="SELECT *, price * qty AS notional FROM read_parquet('$PARQUET') WHERE $WHERE"
SELECT[ndjson_parquet]="SELECT ts::TIMESTAMPTZ AS ts, symbol, price, qty FROM read_json('$NDJSON', format='newline_delimited')"
SELECT[pq_csv]="SELECT * FROM read_parquet('$PARQUET')"
KIND=([csv_parquet]=parquet [csv_filter]=parquet [pq_filter]=parquet [ndjson_parquet]=parquet [pq_csv]=csv)

DKT() { echo "node bench/duckdb/run.mjs --threads $1"; }
duck() { node bench/duckdb/run.mjs --threads "$1" --print "$2"; }
loadavg() { cut -d' ' -f1-3 /proc/loadavg; }

# checksum FILE KIND: the row count, then per column the sum of hash(value),
# as DuckDB reads the file back.
checksum() {
  local src="read_parquet('$1')"
  [ "$2" = csv ] && src="read_csv('$1')"
  duck "$MAXT" "SELECT count(*), sum(hash(COLUMNS(*))) FROM $src"
}

# disorder FILE KIND: how many rows have a ts lower than the row before them
# in the file (one thread for a CSV, so that row_number() follows the file).
disorder() {
  case $2 in
    parquet) duck "$MAXT" "SELECT count(*) FILTER (WHERE ts < prev) FROM (SELECT ts, lag(ts) OVER (ORDER BY file_row_number) AS prev FROM read_parquet('$1', file_row_number=true))" ;;
    csv) duck 1 "SELECT count(*) FILTER (WHERE ts < prev) FROM (SELECT ts, lag(ts) OVER (ORDER BY rn) AS prev FROM (SELECT row_number() OVER () AS rn, ts FROM read_csv('$1')))" ;;
  esac
}

# run_task ID THREADS COMPRESSION TITLE LABEL
run_task() {
  local task=$1 t=$2 comp=$3 title=$4 label=$5 base=${1%_t*}
  base=${base%_snappy}
  local kind=${KIND[$base]} ext=parquet
  [ "$kind" = csv ] && ext=csv
  local zf_cmd="ZFLOW_BENCH_THREADS=$t ZFLOW_BENCH_COMPRESSION=$comp ZFLOW_BENCH_TASK=$task bin/zflow run --quiet bench/pipelines/${PIPE[$base]}.yaml"
  local dk_out=$OUT/duckdb_$task.$ext zf_out=$OUT/zflow_$task.$ext
  local sql="COPY (${SELECT[$base]}) TO '$dk_out' (FORMAT parquet, COMPRESSION $comp)"
  [ "$kind" = csv ] && sql="COPY (${SELECT[$base]}) TO '$dk_out' (FORMAT csv, HEADER)"
  local dk_cmd="$(DKT "$t") \"$sql\""
  printf '%s\t%s\t%s\t%s\n' "$task" "$title" "$t" "$label" >>"$RAW/tasks.tsv"
  log "$task: hyperfine --warmup $WARMUP --runs $RUNS ($t threads)"
  hyperfine --warmup "$WARMUP" --runs "$RUNS" --style basic \
    --export-json "$RAW/hyperfine_$task.json" \
    -n zflow "$zf_cmd" -n duckdb "$dk_cmd" >&2
  log "$task: peak RSS (/usr/bin/time -f %M)"
  /usr/bin/time -f %M -o "$RAW/rss_zflow.txt" bash -c "$zf_cmd" >/dev/null
  /usr/bin/time -f %M -o "$RAW/rss_duckdb.txt" bash -c "$dk_cmd" >/dev/null
  printf '%s\tzflow\t%s\n%s\tduckdb\t%s\n' "$task" "$(tail -n1 "$RAW/rss_zflow.txt")" \
    "$task" "$(tail -n1 "$RAW/rss_duckdb.txt")" >>"$RAW/rss.tsv"
  rm -f "$RAW/rss_zflow.txt" "$RAW/rss_duckdb.txt"
  local zc dc
  zc=$(checksum "$zf_out" "$kind")
  dc=$(checksum "$dk_out" "$kind")
  local zrows=${zc%%$'\t'*} drows=${dc%%$'\t'*}
  printf '%s\t%s\t%s\n' "$task" "$zrows" "$drows" >>"$RAW/counts.tsv"
  log "$task: rows zflow=$zrows duckdb=$drows"
  if [ "$zc" != "$dc" ]; then
    die "$task: the outputs differ: zflow $zf_out: $zc; DuckDB $dk_out: $dc (row count, then per column the sum of hash(value))"
  fi
  local zd dd
  zd=$(disorder "$zf_out" "$kind")
  dd=$(disorder "$dk_out" "$kind")
  [ "$zd" = 0 ] || die "$task: $zd rows of zflow's $zf_out are out of input order"
  local ncols=$(( $(tr '\t' '\n' <<<"$zc" | wc -l) - 1 ))
  local dnote="DuckDB's too"
  [ "$dd" = 0 ] || dnote="DuckDB's has $dd rows out of order"
  printf '%s\tsame rows, %d column checksums equal; zflow in input order, %s\n' "$task" "$ncols" "$dnote" >>"$RAW/checks.tsv"
}

LOAD_START=$(loadavg)
: >"$RAW/rss.tsv"
: >"$RAW/counts.tsv"
: >"$RAW/checks.tsv"
: >"$RAW/tasks.tsv"
# start-up alone
printf 'startup\tstart-up only (1 row / SELECT 1)\t%s\tstart-up\n' "$MAXT" >>"$RAW/tasks.tsv"
log "startup: hyperfine --warmup $WARMUP --runs $RUNS"
hyperfine --warmup "$WARMUP" --runs "$RUNS" --style basic --export-json "$RAW/hyperfine_startup.json" \
  -n zflow "bin/zflow run --quiet bench/pipelines/startup.yaml" -n duckdb "$(DKT "$MAXT") \"SELECT 1\"" >&2
/usr/bin/time -f %M -o "$RAW/rss_zflow.txt" bin/zflow run --quiet bench/pipelines/startup.yaml >/dev/null
/usr/bin/time -f %M -o "$RAW/rss_duckdb.txt" $(DKT "$MAXT") "SELECT 1" >/dev/null
printf 'startup\tzflow\t%s\nstartup\tduckdb\t%s\n' "$(tail -n1 "$RAW/rss_zflow.txt")" "$(tail -n1 "$RAW/rss_duckdb.txt")" >>"$RAW/rss.tsv"
rm -f "$RAW/rss_zflow.txt" "$RAW/rss_duckdb.txt"
printf 'startup\t0\t0\n' >>"$RAW/counts.tsv"
# the first recorded configuration: the CSV tasks writing snappy
for base in csv_parquet csv_filter; do
  case " $TASKS " in *" $base "*) ;; *) continue ;; esac
  run_task "${base}_snappy_t$MAXT" "$MAXT" snappy "${TITLE[$base]/zstd/snappy}" "${LABEL[$base]}\nsnappy"
done
for base in $TASKS; do
  [ -n "${PIPE[$base]:-}" ] || die "unknown task $base (known: ${!PIPE[*]})"
  for t in $THREADS_LIST; do
    run_task "${base}_t$t" "$t" zstd "${TITLE[$base]}" "${LABEL[$base]}"
  done
done
LOAD_END=$(loadavg)

log "report"
bin/zflow-bench-chart report \
  -raw "$RAW" -out "$RESULTS" -rows "$ROWS" -runs "$RUNS" -warmup "$WARMUP" \
  -meta "command=bash bench/duckdb.sh (ROWS=$ROWS RUNS=$RUNS WARMUP=$WARMUP THREADS_LIST=\"$THREADS_LIST\")" \
  -meta "inputs=$CSV ($(stat -c %s "$CSV") bytes), $NDJSON ($(stat -c %s "$NDJSON") bytes), $PARQUET ($(stat -c %s "$PARQUET") bytes, written by DuckDB)" \
  -meta "cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'), $(nproc) CPUs" \
  -meta "kernel=$(uname -r)" \
  -meta "zflow=$(bin/zflow version 2>&1 | head -n1)" \
  -meta "go=$(go env GOVERSION)" \
  -meta "duckdb=$(duck 1 'SELECT version()') via @duckdb/node-api $(node -p "require('./bench/duckdb/node_modules/@duckdb/node-api/package.json').version"), node $(node --version)" \
  -meta "hyperfine=$(hyperfine --version | cut -d' ' -f2)" \
  -meta "git=$(git rev-parse --short HEAD 2>/dev/null || echo none)$(git diff --quiet HEAD -- 2>/dev/null || echo ' (dirty)')" \
  -meta "loadavg=$LOAD_START -> $LOAD_END" \
  -meta "zflow_command=ZFLOW_BENCH_THREADS=T ZFLOW_BENCH_COMPRESSION=C ZFLOW_BENCH_TASK=ID bin/zflow run --quiet bench/pipelines/PIPELINE.yaml" \
  -meta "duckdb_command=node bench/duckdb/run.mjs --threads T \"COPY (SELECT …) TO '…' (FORMAT parquet, COMPRESSION C)\"; the SELECTs are in bench/duckdb.sh"
bin/zflow-bench-chart png -in "$RESULTS/duckdb.json" -out "$RESULTS/duckdb.png"
cat "$RESULTS/duckdb.md"
