# bench/setup.sh — sourced by bench/duckdb.sh and bench/stateful.sh from the
# repository root: installs what the comparisons need on a fresh machine
# (hyperfine, GNU time, Node.js; @duckdb/node-api through npm ci, and
# nodejs-polars too when WITH_POLARS is set) and builds bin/zflow and
# bin/zflow-bench-chart. Needs log().
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
if [ -n "${WITH_POLARS:-}" ] && [ ! -d bench/polars/node_modules/nodejs-polars ]; then
  log "installing nodejs-polars (npm ci)"
  (cd bench/polars && npm ci --no-audit --no-fund --loglevel=error)
fi

log "building bin/zflow and bin/zflow-bench-chart"
"${MAKE:-make}" --no-print-directory build # -checklinkname=0 only if it links io/uring
go build -o bin/zflow-bench-chart ./bench/cmd/chart

