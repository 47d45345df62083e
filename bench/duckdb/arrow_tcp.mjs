// The other side of zflow's tcp_out / tcp_in interop test
// (tcp_interop_test.go): the apache-arrow package reads and writes plain
// Arrow IPC streams on a socket.
//
//   node arrow_tcp.mjs recv PORT     listen on 127.0.0.1:PORT, read one stream, print its rows
//   node arrow_tcp.mjs send PORT     connect to 127.0.0.1:PORT (retrying), write a stream, print its rows
//
// Rows are printed one per line as JSON arrays, int64 and timestamps as
// decimal strings, so the Go side compares exact values.
import net from 'node:net';
import {
  RecordBatchReader, RecordBatchStreamWriter, Table, makeVector, vectorFromArray,
  Int64, Float64, Utf8, Bool, TimestampMicrosecond, Int32, Date_, DateUnit, Dictionary,
} from 'apache-arrow';

const [mode, port] = process.argv.slice(2);

function show(v) {
  if (v === null || v === undefined) return null;
  if (typeof v === 'bigint') return v.toString();
  return v;
}

function printTable(batches) {
  for (const b of batches) {
    for (let i = 0; i < b.numRows; i++) {
      const row = [];
      for (let c = 0; c < b.numCols; c++) row.push(show(b.getChildAt(c).get(i)));
      process.stdout.write(JSON.stringify(row) + '\n');
    }
  }
}

if (mode === 'recv') {
  const server = net.createServer(async (sock) => {
    server.close();
    try {
      const reader = await RecordBatchReader.from(sock);
      const batches = [];
      for await (const b of reader) batches.push(b);
      printTable(batches);
      process.stderr.write(`read ${batches.length} batches\n`);
    } catch (e) {
      process.stderr.write(`arrow_tcp recv: ${e.stack}\n`);
      process.exit(1);
    }
  });
  server.listen(Number(port), '127.0.0.1', () => process.stdout.write('LISTENING\n'));
} else if (mode === 'send') {
  const n = 2500;
  const ids = new BigInt64Array(n), px = new Float64Array(n), ts = [], names = [], ok = [], day = [];
  for (let i = 0; i < n; i++) {
    ids[i] = BigInt(i) * 1000003n - 7n;
    px[i] = i / 8;
    ts.push(i % 11 === 5 ? null : 1700000000000000n + BigInt(i) * 1000n);
    names.push(i % 7 === 3 ? null : `n${i % 13}`);
    ok.push(i % 5 === 0 ? null : i % 2 === 0);
    day.push(19000 + i);
  }
  const cols = {
    id: makeVector(ids),
    px: makeVector(px),
    name: vectorFromArray(names, new Utf8()),
    tag: vectorFromArray(names, new Dictionary(new Utf8(), new Int32())),
    ok: vectorFromArray(ok, new Bool()),
    ts: vectorFromArray(ts.map((v) => (v === null ? null : Number(v / 1000n))), new TimestampMicrosecond()),
  };
  const table = new Table(cols);
  const connect = () => {
    const sock = net.connect(Number(port), '127.0.0.1');
    sock.on('error', (e) => {
      if (e.code === 'ECONNREFUSED') { setTimeout(connect, 50); return; }
      process.stderr.write(`arrow_tcp send: ${e.stack}\n`);
      process.exit(1);
    });
    sock.on('connect', async () => {
      const writer = RecordBatchStreamWriter.writeAll(table.batches.length ? table : table);
      const bytes = await writer.toUint8Array();
      sock.end(Buffer.from(bytes), () => {
        printTable(table.batches);
      });
    });
  };
  connect();
} else {
  process.stderr.write('usage: node arrow_tcp.mjs recv|send PORT\n');
  process.exit(2);
}
