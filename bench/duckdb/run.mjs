// run.mjs runs one SQL task in DuckDB (through @duckdb/node-api) as a whole
// process, the DuckDB side of bench/duckdb.sh.
//
//   node bench/duckdb/run.mjs [--threads N] [--print] SQL...
//
// Each SQL argument may hold several statements separated by ';'. Before
// them the script runs SET threads=N (default 2, the zflow side's
// GOMAXPROCS on the benchmark machine). With --print the rows of the last
// statement are written to stdout, one per line, values separated by tabs
// (used to read Parquet row counts). Any error exits with status 1.
import { DuckDBInstance } from '@duckdb/node-api';

function usage(msg) {
  process.stderr.write(`run.mjs: ${msg}\nusage: node run.mjs [--threads N] [--print] SQL...\n`);
  process.exit(2);
}

let threads = 2;
let print = false;
const sql = [];
const args = process.argv.slice(2);
for (let i = 0; i < args.length; i++) {
  const a = args[i];
  if (a === '--threads') {
    threads = Number(args[++i]);
    if (!Number.isInteger(threads) || threads < 1) usage(`--threads wants a positive integer, got ${args[i]}`);
  } else if (a === '--print') {
    print = true;
  } else if (a.startsWith('--')) {
    usage(`unknown flag ${a}`);
  } else {
    sql.push(a);
  }
}
if (sql.length === 0) usage('no SQL given');

const instance = await DuckDBInstance.create(':memory:');
const conn = await instance.connect();
try {
  await conn.run(`SET threads=${threads}`);
  let last = null;
  for (const s of sql) {
    last = await conn.runAndReadAll(s);
  }
  if (print && last) {
    for (const row of last.getRowsJS()) {
      process.stdout.write(row.map((v) => String(v)).join('\t') + '\n');
    }
  }
} catch (err) {
  process.stderr.write(`run.mjs: ${err.message}\n`);
  process.exitCode = 1;
} finally {
  conn.closeSync();
  instance.closeSync();
}
