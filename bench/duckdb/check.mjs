// check.mjs compares the Parquet outputs of one task of bench/stateful.sh,
// written by different engines, as DuckDB reads them back: the same column
// names, the same row count, and per column a checksum that does not depend
// on row order — the sum of hash(value) for every type but floating point,
// whose sum must agree within a relative 1e-9 (engines add in different
// orders), as must a number column the engines gave different types. With --sorted "a, b" it also counts the rows of the first file
// that are out of that order (they must be none).
//
//   node bench/duckdb/check.mjs [--sorted "k1, k2"] REFERENCE.parquet OTHER.parquet...
//
// Prints one line: the verdict for the report. Exits 1 when a file differs.
import { DuckDBInstance } from '@duckdb/node-api';

const args = process.argv.slice(2);
let sorted = '';
if (args[0] === '--sorted') {
  sorted = args[1];
  args.splice(0, 2);
}
if (args.length < 2) {
  process.stderr.write('usage: node check.mjs [--sorted "k1, k2"] REFERENCE.parquet OTHER.parquet...\n');
  process.exit(2);
}
const quote = (s) => `'${s.replaceAll("'", "''")}'`;
const ident = (s) => `"${s.replaceAll('"', '""')}"`;

const instance = await DuckDBInstance.create(':memory:');
const conn = await instance.connect();
const rows = async (sql) => (await conn.runAndReadAll(sql)).getRowsJS();

const numeric = /^(TINYINT|SMALLINT|INTEGER|BIGINT|HUGEINT|UTINYINT|USMALLINT|UINTEGER|UBIGINT|UHUGEINT|DOUBLE|FLOAT|REAL|DECIMAL.*)$/;
const floating = /^(DOUBLE|FLOAT|REAL)$/;

// sums returns the file's columns (name → type), its row count and, per
// column, the sum of hash(value) and, for a number, the sum of the values.
async function sums(path) {
  const cols = await rows(`DESCRIBE SELECT * FROM read_parquet(${quote(path)})`);
  const types = new Map(cols.map((r) => [r[0], r[1]]));
  const names = [...types.keys()].sort();
  const exprs = names.flatMap((n) => [`sum(hash(${ident(n)}))::VARCHAR`,
    numeric.test(types.get(n)) ? `sum(${ident(n)}::DOUBLE)` : 'NULL::DOUBLE']);
  const [r] = await rows(`SELECT count(*)::BIGINT, ${exprs.join(', ')} FROM read_parquet(${quote(path)})`);
  return { types, names, count: Number(r[0]), hashes: names.map((_, i) => r[1 + 2 * i]), totals: names.map((_, i) => r[2 + 2 * i]) };
}

// same says whether column i agrees: the hashes when both files have the
// same type and it is not floating point; the sums, within a relative
// 1e-9, when it is, or when the engines chose different number types
// (DuckDB writes sum of BIGINT, a HUGEINT, as DOUBLE).
function same(ref, got, n, i) {
  const rt = ref.types.get(n), gt = got.types.get(n);
  if (rt === gt && !floating.test(rt)) return ref.hashes[i] === got.hashes[i];
  if (!numeric.test(rt) || !numeric.test(gt)) return false;
  const a = ref.totals[i], b = got.totals[i];
  if ((a === null) !== (b === null)) return false;
  const scale = Math.max(Math.abs(a ?? 0), Math.abs(b ?? 0), 1e-300);
  return Math.abs((a ?? 0) - (b ?? 0)) / scale <= 1e-9;
}

let bad = 0;
try {
  const ref = await sums(args[0]);
  let order = '';
  for (const path of args.slice(1)) {
    const got = await sums(path);
    const problems = [];
    if (got.names.join(',') !== ref.names.join(',')) {
      problems.push(`columns ${got.names.join(', ')}, want ${ref.names.join(', ')}`);
    } else {
      if (got.count !== ref.count) problems.push(`${got.count} rows, want ${ref.count}`);
      ref.names.forEach((n, i) => {
        if (!same(ref, got, n, i)) {
          problems.push(`column ${n} (${got.types.get(n)}; reference ${ref.types.get(n)}): checksum ${got.hashes[i]}, sum ${got.totals[i]}; reference ${ref.hashes[i]}, ${ref.totals[i]}`);
        }
      });
    }
    if (problems.length > 0) {
      process.stderr.write(`check.mjs: ${path} differs from ${args[0]}: ${problems.join('; ')}\n`);
      bad++;
    }
  }
  if (sorted !== '') {
    const keys = sorted.split(',').map((k) => k.trim());
    const prev = keys.map((k) => `lag(${ident(k)}) OVER (ORDER BY file_row_number) AS p_${k}`).join(', ');
    const cur = keys.map((k) => ident(k)).join(', ');
    const pcur = keys.map((k) => `p_${k}`).join(', ');
    const [[n]] = await rows(`SELECT count(*) FILTER (WHERE file_row_number > 0 AND (${cur}) < (${pcur}))::BIGINT FROM (SELECT file_row_number, ${cur}, ${prev} FROM read_parquet(${quote(args[0])}, file_row_number=true))`);
    if (Number(n) !== 0) {
      process.stderr.write(`check.mjs: ${args[0]}: ${n} rows out of (${sorted}) order\n`);
      bad++;
    }
    order = `, ${args[0].split('/').pop()} in (${sorted}) order`;
  }
  if (bad === 0) {
    process.stdout.write(`same ${ref.count} rows and ${ref.names.length} column checksums (floats within 1e-9)${order}\n`);
  }
} catch (err) {
  process.stderr.write(`check.mjs: ${err.message}\n`);
  bad++;
} finally {
  conn.closeSync();
  instance.closeSync();
}
process.exitCode = bad > 0 ? 1 : 0;
