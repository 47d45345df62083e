// polars.mjs — the Polars side of the stateful comparison (bench/stateful.sh):
// one task of bench/stateful.sh as a lazy query over the same Parquet files,
// run by Polars' streaming engine and written with sinkParquet (zstd).
//
//   POLARS_MAX_THREADS=T node bench/polars/polars.mjs TASK DATA_DIR ROWS OUT.parquet
//
// The queries are the DuckDB SELECTs of bench/stateful.sh written in
// Polars' expression API; the script checks that every engine's output
// holds the same rows.
import pl from "nodejs-polars";

const [task, dir, rows, out] = process.argv.slice(2);
if (!out) {
  console.error("usage: node polars.mjs TASK DATA_DIR ROWS OUT.parquet");
  process.exit(2);
}
const trades = () => pl.scanParquet(`${dir}/sf_trades_${rows}.parquet`);
const symbols = () => pl.scanParquet(`${dir}/sf_symbols.parquet`);
const accounts = () => pl.scanParquet(`${dir}/sf_accounts.parquet`);
const notional = pl.col("price").mul(pl.col("qty"));

const queries = {
  gb500: () =>
    trades()
      .groupBy("symbol")
      .agg(
        pl.col("qty").sum().alias("sum_qty"),
        notional.sum().div(pl.col("qty").sum()).alias("vwap"),
        pl.len().alias("cnt"),
      ),
  gb1m: () =>
    trades()
      .groupBy(pl.col("id").modulo(1000000).alias("k"))
      .agg(pl.col("price").max().alias("max_price")),
  join500: () =>
    trades()
      .join(symbols(), { on: "symbol", how: "inner" })
      .groupBy("sector")
      .agg(notional.sum().alias("notional"), pl.len().alias("cnt")),
  top100: () =>
    trades()
      .withColumns(notional.alias("notional"))
      .sort(["notional", "id"], [true, false])
      .head(100),
  sort2: () => trades().sort(["symbol", "ts"]),
  join1m: () => trades().join(accounts(), { on: "acct", how: "inner" }),
};
const q = queries[task];
if (!q) {
  console.error(`polars.mjs: unknown task ${task} (known: ${Object.keys(queries).join(", ")})`);
  process.exit(2);
}
await q().sinkParquet(out, { compression: "zstd" }).collect();
