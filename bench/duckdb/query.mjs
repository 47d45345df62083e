// query.mjs runs SQL statements in one fresh in-memory DuckDB session
// (through @duckdb/node-api) for Go tests: the DuckDB side of
// internal/duckdbtest.
//
//   node bench/duckdb/query.mjs < statements.json > results.json
//
// stdin holds a JSON array of strings, one SQL statement each (a string may
// hold several statements separated by ';': all run, the last one's result is
// kept). Before them the script runs SET threads=1, so that the order of rows
// does not depend on scheduling, and SET TimeZone='UTC', so that TIMESTAMPTZ
// values print the same on every machine.
//
// stdout gets a JSON array with one object per statement, in order:
//
//   {"columns": [names], "types": [DuckDB type names], "rows": [[value|null]], "error": ""}
//
// Each value is DuckDB's own text for it: a query (statement type SELECT) is
// run as SELECT CAST(COLUMNS(*) AS VARCHAR) FROM (<query>), so the text is
// what CAST(v AS VARCHAR) gives, not a JavaScript rendering. Statements that
// cannot be a subquery (PRAGMA, COPY, CREATE ...) are run as they are and
// their values rendered by @duckdb/node-api's toString. An error in a
// statement goes to its "error" (DuckDB's message) and the next statements
// still run. Anything else (bad input, DuckDB failing to start) is written to
// stderr and the exit status is 1.
import { DuckDBInstance, StatementType } from '@duckdb/node-api';

function fail(msg) {
  process.stderr.write(`query.mjs: ${msg}\n`);
  process.exitCode = 1;
}

async function readStdin() {
  const chunks = [];
  for await (const c of process.stdin) chunks.push(c);
  return Buffer.concat(chunks).toString('utf8');
}

// errorText is DuckDB's message for err, never empty.
function errorText(err) {
  let m = err && err.message ? err.message : String(err);
  m = m.replace(/^Failed to extract statements: /, '');
  return m === '' ? 'unknown error' : m;
}

function jsText(v) {
  return v === null || v === undefined ? null : String(v);
}

// runOne runs one SQL string and returns its result object.
async function runOne(conn, sql) {
  const out = { columns: [], types: [], rows: [], error: '' };
  try {
    const extracted = await conn.extractStatements(sql);
    const n = extracted.count;
    if (n === 0) throw new Error('no statement in the input');
    for (let i = 0; i < n - 1; i++) {
      const p = await extracted.prepare(i);
      try {
        await p.run();
      } finally {
        p.destroySync();
      }
    }
    const p = await extracted.prepare(n - 1);
    try {
      for (let c = 0; c < p.columnCount; c++) {
        out.columns.push(p.columnName(c));
        out.types.push(p.columnType(c).toString());
      }
      if (p.statementType === StatementType.SELECT && p.columnCount > 0) {
        // The text of the last statement alone, without a trailing ';'.
        const last = n === 1 ? sql : await lastStatementText(conn, sql, n);
        if (last !== null) {
          try {
            const r = await conn.runAndReadAll(
              `SELECT CAST(COLUMNS(*) AS VARCHAR) FROM (${last}\n) AS __duckdbtest`);
            out.rows = r.getRowsJS().map((row) => row.map(jsText));
            return out;
          } catch {
            // Not usable as a subquery (or it failed: then running it
            // directly below reports the statement's own error).
          }
        }
      }
      const r = await p.runAndReadAll();
      out.rows = (await r.getRows()).map((row) => row.map(jsText));
    } finally {
      p.destroySync();
    }
  } catch (err) {
    out.columns = [];
    out.types = [];
    out.rows = [];
    out.error = errorText(err);
  }
  return out;
}

// lastStatementText finds the last of n statements in sql: it is the
// shortest suffix that parses as exactly one statement. null when none does.
async function lastStatementText(conn, sql, n) {
  const parts = sql.split(';');
  for (let k = parts.length - 1; k >= 0; k--) {
    const tail = parts.slice(k).join(';');
    if (tail.trim() === '') continue;
    try {
      const e = await conn.extractStatements(tail);
      if (e.count === 1) return tail.replace(/;\s*$/, '');
    } catch {
      // a cut inside a string literal: try a longer suffix
    }
  }
  return null;
}

async function main() {
  let stmts;
  try {
    stmts = JSON.parse(await readStdin());
  } catch (err) {
    return fail(`stdin is not JSON: ${errorText(err)}`);
  }
  if (!Array.isArray(stmts) || !stmts.every((s) => typeof s === 'string')) {
    return fail('stdin must be a JSON array of strings');
  }
  const instance = await DuckDBInstance.create(':memory:');
  const conn = await instance.connect();
  try {
    await conn.run('SET threads=1');
    await conn.run("SET TimeZone='UTC'");
    process.stdout.write('[');
    for (let i = 0; i < stmts.length; i++) {
      const res = await runOne(conn, stmts[i].replace(/[\s;]+$/, ''));
      process.stdout.write((i > 0 ? ',\n' : '\n') + JSON.stringify(res));
    }
    process.stdout.write('\n]\n');
  } finally {
    conn.closeSync();
    instance.closeSync();
  }
}

main().catch((err) => fail(err && err.stack ? err.stack : String(err)));
