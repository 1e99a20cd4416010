'use strict';
// Tests of the Node binding against the throwaway PostgreSQL of scripts/with-pg (PGHOST,
// PGPORT, PGDATABASE, PGUSER and FW_PG_* in the environment). Run with: node --expose-gc --test
const test = require('node:test');
const assert = require('node:assert/strict');
const fw = require('..');

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function collect(stream) {
  const rows = [];
  for await (const row of stream) rows.push(row);
  return rows;
}

// Client backends connected to the test database, counted through the library itself:
// v_user has n = 1..1000, so the rows with n <= count(*) are that many.
async function backends(client) {
  const s = client.query('v_user').where(
    "(data->>'n')::int <= (SELECT count(*) FROM pg_stat_activity " +
    "WHERE backend_type = 'client backend' AND datname = current_database())",
  ).stream();
  return (await collect(s)).length;
}

let client;
test.before(() => { client = new fw.Client(''); });
test.after(() => { client.close(); });

test('version', () => {
  assert.match(fw.version(), /^\d+\.\d+\.\d+/);
});

test('large view: count and content, event loop never blocked', async () => {
  // A timer keeps firing while the rows are consumed.
  let ticks = 0;
  const timer = setInterval(() => { ticks++; }, 1);
  const t0 = Date.now();
  const rows = (await collect(client.query('v_user').stream({ batchSize: 64 }))).map((r) => JSON.parse(r));
  assert.equal(rows.length, 1000);
  const byN = new Map(rows.map((r) => [r.n, r]));
  for (let n = 1; n <= 1000; n++) assert.ok(byN.has(n), `row n=${n}`);
  for (const n of [1, 500, 1000]) {
    assert.equal(byN.get(n).email, `user${n}@example.com`);
    assert.equal(byN.get(n).neg, -n);
    assert.equal(byN.get(n).unicode, 'Zoë 東京 🎉 ñ € 𝄞');
  }

  // Every row once, in order, whether a consumer that catches up waits on a timer first
  // (pollMs, default 1) or on a worker thread at once (0).
  for (const opts of [{}, { pollMs: 0 }, { pollMs: 3, batchSize: 7 }]) {
    let count = 0;
    const ids = [];
    for await (const row of client.query('v_bench_10k').orderBy("(data->>'id')::int").stream(opts)) {
      ids.push(JSON.parse(row).id);
      count++;
    }
    assert.equal(count, 10000, JSON.stringify(opts));
    assert.deepEqual(ids, Array.from({ length: 10000 }, (_, i) => i + 1), JSON.stringify(opts));
  }

  // v_slow: ~2 s of waiting on the server; the timer must keep firing all along.
  const slow = client.query('v_slow').stream();
  let slowRows = 0;
  const ticksBefore = ticks;
  const s0 = Date.now();
  for await (const row of slow) {
    assert.ok(row.length > 8000);
    slowRows++;
  }
  const waited = Date.now() - s0;
  clearInterval(timer);
  assert.equal(slowRows, 20);
  assert.ok(waited > 1000, `v_slow took ${waited} ms`);
  // a blocked loop would give ~20 ticks (one per row); a free one ~1 per ms
  assert.ok(ticks - ticksBefore > waited / 10, `${ticks - ticksBefore} ticks in ${waited} ms`);
  assert.ok(Date.now() - t0 > 0);
});

test('query builder; a query streams more than once', async () => {
  const q = client.query('v_user').where("(data->>'n')::int > 10")
    .orderBy("(data->>'n')::int", { desc: true }).limit(3).offset(1);
  for (let i = 0; i < 2; i++) {
    assert.deepEqual((await collect(q.stream())).map((r) => JSON.parse(r).n), [999, 998, 997]);
  }
  assert.throws(() => client.query('v_user; drop table t_guard').stream(),
    (e) => e instanceof fw.InvalidArgumentError && e.code === 'FW_E_INVALID_ARGUMENT'
      && e.status === 'FW_E_INVALID_ARGUMENT' && e.errno === -1 && e.sqlstate === null);
});

test('parallel: a table by block ranges, a view by a partition expression, in order', async () => {
  const ids = (await collect(client.query('users').parallel(3).stream())).map((r) => JSON.parse(r).id);
  assert.deepEqual(ids.sort((a, b) => a - b), Array.from({ length: 1000 }, (_, i) => i + 1));
  const q = client.query('v_user').parallel(2, { partitionBy: "(data->>'id')::int" })
    .orderBy("(data->>'n')::int", { desc: true }).limit(3).offset(1);
  assert.deepEqual((await collect(q.stream())).map((r) => JSON.parse(r).n), [999, 998, 997]);
  assert.throws(() => client.query('v_user').parallel(2).stream(),
    (e) => e instanceof fw.InvalidArgumentError && /fw_query_partition_by/.test(e.message));
});

test('missing view: ServerError with sqlstate 42P01', () => {
  assert.throws(() => client.query('v_does_not_exist').stream(), (e) => {
    assert.ok(e instanceof fw.ServerError);
    assert.ok(e instanceof fw.FwError);
    assert.ok(e instanceof Error);
    assert.equal(e.sqlstate, '42P01');
    // as in node-postgres: the SQLSTATE in .code; the library status in .status / .errno
    assert.equal(e.code, '42P01');
    assert.equal(e.status, 'FW_E_SERVER');
    assert.equal(e.errno, -6);
    assert.match(e.message, /v_does_not_exist/);
    return true;
  });
});

test('error fields: status, errno, message, sqlstate, detail, hint, position', () => {
  assert.throws(() => client.query('v_user').where("(data->>'n')::int = 'x'").stream(), (e) => {
    assert.ok(e instanceof fw.ServerError);
    assert.deepEqual([e.status, e.errno, e.sqlstate, e.code], ['FW_E_SERVER', -6, '22P02', '22P02']);
    assert.match(e.message, /invalid input syntax/);
    assert.notEqual(e.position, null);
    for (const f of ['detail', 'hint']) assert.ok(f in e);
    return true;
  });
});

test('rows as text and parsed; batches', async () => {
  const q = client.query('v_user').orderBy("(data->>'n')::int");
  const texts = await collect(q.stream());
  const parsed = await collect(q.stream({ parse: true }));
  assert.equal(texts.length, 1000);
  assert.ok(texts.every((r) => typeof r === 'string'));
  assert.deepEqual(texts.map((r) => JSON.parse(r)), parsed);
  assert.deepEqual(parsed.map((r) => r.n), Array.from({ length: 1000 }, (_, i) => i + 1));
  assert.deepEqual(await collect(client.query('v_null').stream({ parse: true })), [{ i: 1 }, null, { i: 3 }]);
  assert.deepEqual(await collect(client.query('v_null').stream()), ['{"i": 1}', 'null', '{"i": 3}']);

  const s = client.query('v_user').stream({ batchSize: 64 });
  assert.ok(await s.next());
  const sizes = [];
  for await (const rows of s.batches()) sizes.push(rows.length);
  assert.equal(sizes.reduce((a, b) => a + b, 0), 999);
  assert.ok(sizes.every((n) => n >= 1 && n <= 64), String(sizes));
  assert.equal(s.state, 'closed');
  const one = [];
  for await (const rows of client.query('v_user').limit(10).stream({ maxBytes: 1 }).batches()) {
    one.push(rows.length);
  }
  assert.deepEqual(one, Array(10).fill(1));
});

test('server error after 50 rows: rows first, then 22012', async () => {
  const s = client.query('v_div_zero_after').stream();
  const got = [];
  await assert.rejects(async () => {
    for await (const row of s) got.push(JSON.parse(row).i);
  }, (e) => e instanceof fw.ServerError && e.sqlstate === '22012');
  assert.deepEqual(got, Array.from({ length: 50 }, (_, i) => i + 1));
});

test('schema error', () => {
  assert.throws(() => client.query('v_not_json').stream(), fw.SchemaError);
});

test('describe wait: errors of a query slower than it come from the stream', async () => {
  // v_slow_not_json describes itself after 0.5 s: past the default 20 ms the wrong shape
  // comes from the iteration; waiting longer (2 s, or without limit), from stream() itself
  await assert.rejects(collect(client.query('v_slow_not_json').stream()), fw.SchemaError);
  for (const wait of [2000, null]) {
    assert.throws(() => client.query('v_slow_not_json').describeWait(wait).stream(), fw.SchemaError);
  }
  // wait 0: stream() does not wait, so the missing relation comes from the iteration,
  // unless the answer was already there when stream() looked once
  await assert.rejects(async () => {
    assert.deepEqual(await collect(client.query('v_does_not_exist').describeWait(0).stream()), []);
  }, (e) => e instanceof fw.ServerError && e.sqlstate === '42P01');
  // the client goes on
  assert.equal((await collect(client.query('v_user').limit(5).describeWait(3600000).stream())).length, 5);
  assert.throws(() => client.query('v_user').describeWait(3600001).stream(), fw.InvalidArgumentError);
  assert.throws(() => client.query('v_user').describeWait(-1), fw.InvalidArgumentError);
});

test('read-ahead and read coalescing', async () => {
  for (const coalesce of [0, 100000]) {
    const q = client.query('v_user').orderBy("(data->>'n')::int").readAhead(1)
      .readCoalesce(coalesce).chunkSize(1);
    const ns = (await collect(q.stream())).map((r) => JSON.parse(r).n);
    assert.deepEqual(ns, Array.from({ length: 1000 }, (_, i) => i + 1), `coalesce ${coalesce}`);
  }
  assert.throws(() => client.query('v_user').readAhead(0).stream(), fw.InvalidArgumentError);
  assert.throws(() => client.query('v_user').readAhead(-1), fw.InvalidArgumentError);
  assert.throws(() => client.query('v_user').readCoalesce(100001).stream(), fw.InvalidArgumentError);
  assert.throws(() => client.query('v_user').readCoalesce(1.5), fw.InvalidArgumentError);
});

test('authentication', async () => {
  const base = `host=127.0.0.1 port=${process.env.FW_PG_PORT} dbname=fraiseql_test user=fw_scram`;
  assert.throws(() => new fw.Client(`${base} password=wrong`),
    (e) => e instanceof fw.AuthError && e instanceof fw.ConnectError && e.sqlstate === '28P01');
  const c = new fw.Client(`${base} password=scram-secret`);
  assert.equal((await collect(c.query('v_user').limit(5).stream())).length, 5);
  c.close();
});

test('cancel mid-stream', async () => {
  // v_sleep30 sends its only row after 30 s
  const s = client.query('v_sleep30').stream();
  const t0 = Date.now();
  setTimeout(() => s.cancel(), 300);
  await assert.rejects(collect(s), fw.CancelledError);
  assert.ok(Date.now() - t0 < 5000, `cancel took ${Date.now() - t0} ms`);

  // cancel from inside the loop
  const slow = client.query('v_slow').stream();
  let n = 0;
  await assert.rejects(async () => {
    for await (const row of slow) {
      assert.ok(row);
      n++;
      slow.cancel();
      assert.equal(slow.state, 'cancelled');
    }
  }, fw.CancelledError);
  assert.equal(n, 1);

  // an AbortSignal
  const ac = new AbortController();
  const s3 = client.query('v_sleep30').stream({ signal: ac.signal });
  setTimeout(() => ac.abort(), 200);
  await assert.rejects(collect(s3), fw.CancelledError);

  // the client is still usable
  assert.equal((await collect(client.query('v_user').limit(2).stream())).length, 2);
});

test('close while a fetch is in flight; break closes the stream', async () => {
  const s = client.query('v_sleep30').stream();
  const p = s.next();
  await sleep(100);
  s.close(); // the fetch is woken up and the stream freed when it is back
  await assert.rejects(p, fw.CancelledError);
  assert.equal(s.state, 'closed');
  await assert.rejects(s.next(), fw.StateError);
  assert.throws(() => s.pause(), fw.StateError);

  // Closed while the consumer waits on the timer (pollMs) after catching up with rows
  // that flow (v_slow: a row every 100 ms): the wait is cancelled as a worker wait is.
  const s3 = client.query('v_slow').stream({ pollMs: 400 });
  const it = s3.batches()[Symbol.asyncIterator]();
  await it.next(); // the first row, waited for on a worker
  await sleep(250); // two more rows arrive meanwhile
  // Take the rows that are ready (without waiting: rows flow) until a call waits: caught
  // up, it waits on the 400 ms timer, not on a worker.
  let p3;
  for (let taken = 0; ; taken++) {
    p3 = it.next();
    if (!(await Promise.race([p3.then(() => true), sleep(30).then(() => false)]))) {
      assert.ok(taken >= 1, 'rows were ready after 250 ms');
      break;
    }
  }
  assert.equal(s3._h.busy, false, 'no worker call in flight');
  s3.close();
  await assert.rejects(p3, fw.CancelledError);

  const s2 = client.query('v_user').stream();
  for await (const row of s2) {
    assert.ok(row);
    break;
  }
  assert.equal(s2.state, 'closed');
});

test('pause and resume', async () => {
  const s = client.query('v_user').chunkSize(16).stream({ batchSize: 8 });
  let n = 0;
  let resumedAt = 0;
  const t0 = Date.now();
  for await (const row of s) {
    assert.ok(row);
    n++;
    if (n === 1) {
      s.pause('test');
      s.pause(); // idempotent
      assert.equal(s.state, 'paused');
      setTimeout(() => { resumedAt = Date.now(); s.resume(); }, 300);
    }
    if (n === 1000) {
      const st = s.stats();
      assert.equal(st.pause_count, 1);
      assert.ok(st.paused_ms_total >= 100, `paused ${st.paused_ms_total} ms`);
    }
  }
  assert.equal(n, 1000);
  assert.ok(resumedAt > 0 && resumedAt - t0 >= 250);
});

test('concurrent next() calls are served in order', async () => {
  const s = client.query('v_user').orderBy("(data->>'n')::int").limit(300).stream({ batchSize: 16 });
  const rows = await Promise.all(Array.from({ length: 301 }, () => s.next()));
  assert.deepEqual(rows.slice(0, 300).map((r) => JSON.parse(r).n), Array.from({ length: 300 }, (_, i) => i + 1));
  assert.equal(rows[300], null);
  s.close();
});

test('next(), for-await and batches() take turns on one stream: every row once, in order', async () => {
  // Blocks of 16 rows, taken from by all three: a block left half taken by next() or the
  // iterator is what batches() or the next fetch gets first, never overwritten by it.
  const s = client.query('v_user').orderBy("(data->>'n')::int").limit(400).stream({ batchSize: 16 });
  const it = s[Symbol.asyncIterator]();
  const batches = s.batches();
  const got = [];
  for (let round = 0; got.length < 400; round++) {
    for (let k = 0; k < 5 + (round % 7) && got.length < 400; k++) got.push(await s.next());
    for (let k = 0; k < 3 + (round % 11) && got.length < 400; k++) got.push((await it.next()).value);
    if (got.length < 400) got.push(...(await batches.next()).value);
  }
  assert.deepEqual(got.map((r) => JSON.parse(r).n), Array.from({ length: 400 }, (_, i) => i + 1));
  assert.equal(await s.next(), null);
  assert.deepEqual(await it.next(), { value: undefined, done: true });
  assert.equal(s.state, 'closed'); // the iterator's end closes the stream
  // queued at once from the row calls of both kinds: still in order
  const t = client.query('v_user').orderBy("(data->>'n')::int").limit(100).stream({ batchSize: 8 });
  const ti = t[Symbol.asyncIterator]();
  const mixed = await Promise.all(Array.from({ length: 100 }, (_, i) => (i % 3 ? t.next() : ti.next().then((r) => r.value))));
  assert.deepEqual(mixed.map((r) => JSON.parse(r).n), Array.from({ length: 100 }, (_, i) => i + 1));
  t.close();
});

test('stats', async () => {
  const s = client.query('v_user').stream();
  assert.equal(s.stats().total_rows_yielded, 0);
  let n = 0;
  while ((await s.next()) !== null) n++;
  const st = s.stats();
  assert.equal(n, 1000);
  assert.equal(st.state, 'completed');
  assert.equal(st.total_rows_received, 1000);
  assert.equal(st.total_rows_yielded, 1000);
  assert.equal(st.total_rows_filtered, 0);
  assert.ok(st.total_bytes_received > 100000);
  assert.ok(st.elapsed_us > 0);
  assert.equal(st.items_buffered, 0);
  assert.throws(() => s.pause(), fw.StateError);
  s.close();
  assert.throws(() => s.stats(), fw.StateError);
});

test('metrics dump', async () => {
  await collect(client.query('v_user').limit(1).stream());
  const text = fw.metricsDump();
  assert.ok(text.includes('fraiseql_queries_total'));
  assert.ok(text.includes('entity="v_user"'));
});

test('handles dropped without close are freed by the GC', { skip: !global.gc && 'needs --expose-gc' }, async () => {
  const before = await backends(client);
  const base = fw.liveHandles();
  await (async () => {
    for (let i = 0; i < 60; i++) {
      const c = new fw.Client('');
      const s = c.query('v_bench_10k').stream();
      assert.ok(await s.next());
      // never closed
    }
  })();
  const deadline = Date.now() + 10000;
  let now;
  for (;;) {
    global.gc();
    await sleep(20); // FinalizationRegistry callbacks run as tasks
    now = await backends(client);
    const h = fw.liveHandles();
    if ((h.client === base.client && h.stream === base.stream && now <= before + 2) || Date.now() > deadline) break;
  }
  assert.deepEqual(fw.liveHandles(), base);
  assert.ok(now <= before + 2, `${now} backends, ${before} before`);
});

test('a block whose split does not give n rows is cut by its offsets', () => {
  // A block as fw_stream_next_block lays it out, with a NUL inside row 1 (JSON text from
  // PostgreSQL never has one): the split finds 4 pieces for 3 rows.
  const koffi = require('koffi');
  const data = Buffer.from('{"a":1}\0"x\0y"\0[]\0', 'latin1');
  const mem = koffi.alloc('uint8_t', data.length);
  koffi.encode(mem, 'uint8_t', Array.from(data), data.length);
  const offs = koffi.alloc('size_t', 4);
  koffi.encode(offs, 'size_t', [0, 8, 14, 17], 4);
  const blk = koffi.alloc('fw_block', 1);
  koffi.encode(blk, 'fw_block', { data: mem, len: data.length, offsets: offs, n: 3 });
  const s = Object.create(fw.Stream.prototype);
  s._h = { block: blk, text: Buffer.alloc(0), ends: new Uint32Array(0), kinds: Buffer.alloc(0) };
  s._parse = false;
  assert.deepEqual(s._rowsOfBlock(), ['{"a":1}', '"x\0y"', '[]']);
  // a raw NUL in a JSON string is not JSON: the row's own parse says so
  s._parse = true;
  assert.throws(() => s._rowsOfBlock(), SyntaxError);
  for (const p of [mem, offs, blk]) koffi.free(p);
});

test('rows re-encoded as Latin-1 or UTF-16 by the library are the strings of their UTF-8', () => {
  // Blocks laid out as fw_stream_next_block does: ASCII rows, rows of Latin-1 letters (each
  // made from the library's Latin-1 copy) and rows with characters beyond U+00FF (from
  // its UTF-16 copy), mixed in one block.
  const koffi = require('koffi');
  const cases = [
    ['{"a":1}', '[]', '"plain"'],
    ['{"city":"Zürich"}', '"José Núñez"', '{"tags":["célèbre"]}', '"ÿ þ ß"'],
    ['{"city":"Zürich"}', '"Kraków – Łódź"', '"東京"', '"😀 emoji"', '', '"Олег Петров"', '1'],
  ];
  for (const rows of cases) {
    const data = Buffer.from(rows.map((r) => `${r}\0`).join(''), 'utf8');
    const offs = [0];
    for (const r of rows) offs.push(offs[offs.length - 1] + Buffer.byteLength(r) + 1);
    const mem = koffi.alloc('uint8_t', data.length);
    koffi.encode(mem, 'uint8_t', Array.from(data), data.length);
    const off = koffi.alloc('size_t', offs.length);
    koffi.encode(off, 'size_t', offs, offs.length);
    const blk = koffi.alloc('fw_block', 1);
    koffi.encode(blk, 'fw_block', { data: mem, len: data.length, offsets: off, n: rows.length });
    const s = Object.create(fw.Stream.prototype);
    // buffers smaller than the block: they grow
    s._h = { block: blk, text: Buffer.alloc(4), ends: new Uint32Array(2), kinds: Buffer.alloc(1) };
    s._parse = false;
    const got = s._rowsOfBlock();
    assert.deepEqual(got, rows);
    // one at a time (next(), for await): the same rows, each cut when taken; rest() gives
    // the ones not taken
    const one = s._rowsOfBlock(true);
    assert.equal(one.length, rows.length);
    assert.equal(one.take(), rows[0]);
    assert.deepEqual(one.rest(), rows.slice(1));
    assert.deepEqual(got.map((r) => r.length), rows.map((r) => r.length));
    // each row's kind: Latin-1 (1) when every character is below U+0100, else UTF-16 (2)
    const want = rows.map((r) => ([...r].every((c) => c.codePointAt(0) < 0x100) ? 1 : 2));
    assert.deepEqual([...s._h.kinds.subarray(0, rows.length)], want);
    s._parse = true;
    if (rows.includes('')) assert.throws(() => s._rowsOfBlock(), SyntaxError); // not JSON
    else assert.deepEqual(s._rowsOfBlock(), rows.map((r) => JSON.parse(r)));
    for (const p of [mem, off, blk]) koffi.free(p);
  }
});

// The "id" of each row of the query, in the order streamed.
async function ids(q) {
  return (await collect(q.stream())).map((r) => JSON.parse(r).id);
}

// Ids of the rows matching a hand-written SQL condition (the expected set).
async function hand(cond, source = 'v_filter') {
  return (await ids(client.query(source).where(cond))).sort((a, b) => a - b);
}

const byNum = (a, b) => a - b;

test('where: typed predicates match the same condition written in SQL', async () => {
  for (const src of ['v_filter', 'v_filter_json']) {
    const cases = [
      [['/status', 'eq', 'active'], "data->>'status' = 'active'"],
      [[{ path: '/address/city', op: 'EQ', value: 'Zürich' }], "data->'address'->>'city' = 'Zürich'"],
      [['/score', 'gt', 10], "(data->>'score')::numeric > 10"],
      [['/score', 'le', 0.5], "(data->>'score')::numeric <= 0.5"],
      [['/score', 'lt', 123456789012345678901234567890n],
        "(data->>'score')::numeric < 123456789012345678901234567890"],
      [['/status', 'in', ['pending', 'inactive']], "data->>'status' IN ('pending', 'inactive')"],
      [['/id', 'not_in', [1, 2, 3]], "(data->>'id')::int NOT IN (1, 2, 3)"],
      [['/active', 'eq', true], "(data->>'active')::boolean"],
      [['/email', 'eq', null], "data->>'email' IS NULL"],
      [['/email', 'exists'], "data::jsonb ? 'email'"],
      [[{ path: '/email', op: 'not_exists' }], "NOT data::jsonb ? 'email'"],
      [['/tags', 'json_contains', ['poet']], `data::jsonb @> '{"tags": ["poet"]}'`],
      [['/name', 'starts_with', '50%'], "data->>'name' LIKE '50\\%%'"],
    ];
    for (const [args, cond] of cases) {
      const want = await hand(cond, src);
      assert.ok(want.length > 0, cond);
      const got = (await ids(client.query(src).where(...args))).sort(byNum);
      assert.deepEqual(got, want, `${src} ${JSON.stringify(args, (k, v) => (typeof v === 'bigint' ? `${v}n` : v))}`);
    }
  }
});

test('orderByPath: text with a collation and numeric', async () => {
  let got = await ids(client.query('v_filter').orderByPath('/name', { kind: 'text', collation: 'C', desc: true })
    .orderBy("(data->>'id')::int"));
  let want = await ids(client.query('v_filter').orderBy("data->>'name'", { collation: 'C', desc: true })
    .orderBy("(data->>'id')::int"));
  assert.deepEqual(got, want);
  assert.equal(new Set(got).size, got.length);
  got = await ids(client.query('v_filter_json').orderByPath('/score', { kind: 'numeric' })
    .orderBy("(data->>'id')::int"));
  want = await ids(client.query('v_filter_json').orderBy("(data->>'score')::numeric")
    .orderBy("(data->>'id')::int"));
  assert.deepEqual(got, want);
  assert.deepEqual(got.slice(0, 2), [3, 7]); // -3, then 0: numeric, not text, order
  assert.throws(() => client.query('v_filter').orderByPath('/score', { kind: 'roman' }), fw.InvalidArgumentError);
  assert.throws(() => client.query('v_filter').orderByPath('/score', { kind: 'numeric', collation: 'C' }).stream(),
    (e) => e instanceof fw.InvalidArgumentError && e.status === 'FW_E_INVALID_ARGUMENT');
});

test('whereParams: fragments renumbered, null is SQL NULL', async () => {
  let q = client.query('v_filter').whereParams("data->>'status' = $1", ['inactive'])
    .whereParams("data->>'email' IS NOT DISTINCT FROM $1 AND (data->>'score')::numeric <= $2", [null, 0]);
  const want = await hand("data->>'status' = 'inactive' AND data->>'email' IS NULL " +
    "AND (data->>'score')::numeric <= 0");
  assert.deepEqual(want, [7]);
  assert.deepEqual((await ids(q)).sort(byNum), want);
  q = client.query('v_filter').whereParams("(data->>'score')::numeric > $1", [10])
    .whereParams("data->>'active' = $1 OR $2::text IS NULL", [false, 'x']);
  assert.deepEqual((await ids(q)).sort(byNum),
    await hand("(data->>'score')::numeric > 10 AND data->>'active' = 'false'"));
});

test('where / whereParams: injection attempts stay data', async () => {
  const evil = "O'Brien $1 '); DROP TABLE t_guard; --";
  assert.deepEqual(await ids(client.query('v_filter').where('/name', 'eq', evil)), [9]);
  assert.deepEqual(await ids(client.query('v_filter').whereParams("data->>'name' = $1", [evil])), [9]);
  assert.deepEqual(await ids(client.query('v_filter').where('/status', 'eq', "x' OR '1'='1")), []);
  assert.deepEqual(await ids(client.query('v_filter').whereParams("data->>'status' = $1", ["x' OR '1'='1"])), []);
  // t_guard still exists
  assert.equal((await ids(client.query('v_filter').where('EXISTS (SELECT 1 FROM t_guard)'))).length,
    (await hand('true')).length);
});

test('where: errors', () => {
  assert.throws(() => client.query('v_filter').where('/name', 'like', 5).stream(), (e) =>
    e instanceof fw.InvalidArgumentError && e.status === 'FW_E_INVALID_ARGUMENT' &&
    e.message.includes('LIKE') && e.message.includes('number'));
  assert.throws(() => client.query('v_filter').where('/name', 'equals', 'x'),
    (e) => e instanceof fw.InvalidArgumentError && e.message.includes('"equals" is not an operator'));
  assert.throws(() => client.query('v_filter').where('/name', 'eq'), fw.InvalidArgumentError);
  assert.throws(() => client.query('v_filter').where('/score', 'gt', NaN), fw.InvalidArgumentError);
  assert.throws(() => client.query('v_filter').whereParams("data->>'a' = $2", ['x']).stream(),
    (e) => e instanceof fw.InvalidArgumentError && e.status === 'FW_E_INVALID_ARGUMENT');
});
