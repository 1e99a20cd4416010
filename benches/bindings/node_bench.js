'use strict';
// Node contenders of benches/bindings/run: stream SOURCE once, touch every row (its length),
// print one RESULT line. Wall and CPU (process.cpuUsage: every thread) from just before the
// query is sent (after connecting) to the last row.
//
//   node node_bench.js MODE CONNINFO SOURCE [FW_BINDING_DIR]
//
//   fw              fraiseql-wire: for await (const row of stream)
//   fw-batches      fraiseql-wire: for await (const rows of stream.batches())
//   pg-query-stream node-postgres + pg-query-stream (batchSize 100, its default)
//   pg-cursor       node-postgres + pg-cursor, read(1000) at a time
const [mode, conninfo, source, fwDir] = process.argv.slice(2);
const sql = `SELECT data FROM ${source}`;

function pgConfig(s) {
  const cfg = {};
  for (const kv of s.trim().split(/\s+/)) {
    const [k, v] = kv.split('=');
    if (k === 'dbname') cfg.database = v;
    else if (k === 'sslmode') cfg.ssl = v === 'disable' ? false : undefined;
    else cfg[k] = k === 'port' ? Number(v) : v;
  }
  return cfg;
}

async function main() {
  let rows = 0;
  let chars = 0;
  let t0;
  let c0;
  const start = () => { t0 = process.hrtime.bigint(); c0 = process.cpuUsage(); };
  if (mode === 'fw' || mode === 'fw-batches') {
    const fw = require(fwDir);
    const client = new fw.Client(conninfo);
    start();
    const s = client.query(source).stream();
    if (mode === 'fw') {
      for await (const row of s) { rows++; chars += row.length; }
    } else {
      for await (const batch of s.batches()) {
        for (let i = 0; i < batch.length; i++) { rows++; chars += batch[i].length; }
      }
    }
    client.close();
  } else if (mode === 'pg-query-stream' || mode === 'pg-cursor') {
    const pg = require('pg');
    // json/jsonb as text, as fraiseql-wire hands them (no parse in either).
    const types = { getTypeParser: (oid, format) => (oid === 114 || oid === 3802 ? (v) => v : pg.types.getTypeParser(oid, format)) };
    const client = new pg.Client(pgConfig(conninfo));
    await client.connect();
    start();
    if (mode === 'pg-query-stream') {
      const QueryStream = require('pg-query-stream');
      const stream = client.query(new QueryStream(sql, [], { types }));
      for await (const row of stream) { rows++; chars += row.data.length; }
    } else {
      const Cursor = require('pg-cursor');
      const cursor = client.query(new Cursor(sql, [], { types }));
      for (;;) {
        const batch = await cursor.read(1000);
        if (batch.length === 0) break;
        for (let i = 0; i < batch.length; i++) { rows++; chars += batch[i].data.length; }
      }
      await cursor.close();
    }
    await client.end();
  } else {
    throw new Error(`node_bench: unknown mode ${mode}`);
  }
  const wall = Number(process.hrtime.bigint() - t0) / 1000;
  const c = process.cpuUsage(c0);
  console.log(`RESULT rows=${rows} chars=${chars} wall_us=${Math.round(wall)} cpu_us=${c.user + c.system}`);
}
main().catch((e) => { console.error(e); process.exit(1); });
