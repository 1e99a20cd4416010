'use strict';
// What `for await (const row of stream)` costs per row over a loop over batches, in V8, with
// no library and no strings made: 1M rows handed out from arrays of 256 ready strings, the
// consumer reading each row's length (CPU time, process.cpuUsage; best of 3).
//
//   node benches/bindings/node_iter_micro.js
//
//   batches      for await over arrays, an inner for loop (what stream.batches() costs)
//   binding      for await over an iterator shaped as the binding's [Symbol.asyncIterator]
//                (a row from the current array: one Promise.resolve({ value, done }) per row;
//                an array fetched through the stream's promise tail)
//   bare         the least the protocol allows: next() returns an already resolved promise of
//                a new result object, nothing else
//   plain object next() returns the result object itself, not a promise (for await awaits it
//                all the same; not a valid async iterator for a caller of next().then)
//   async gen    an async generator yielding the rows of each array
//
// Every for-await variant pays one await, so one microtask turn, per row: the floor of the
// protocol, whatever next() does.
const BLOCK = 256;
const ROWS = 1 << 20;
const block = [];
for (let i = 0; i < BLOCK; i++) block.push('x'.repeat(400 + (i % 7)));

function source() {
  let k = 0;
  return { nextBatch: () => Promise.resolve(k++ < ROWS / BLOCK ? block.slice() : null) };
}

function binding(src) {
  let rows = null;
  let i = 0;
  let tail = Promise.resolve();
  return {
    [Symbol.asyncIterator]() { return this; },
    next() {
      if (rows !== null && i < rows.length) {
        const value = rows[i];
        rows[i++] = undefined;
        return Promise.resolve({ value, done: false });
      }
      const p = tail.then(() => src.nextBatch()).then((b) => {
        if (b === null) return { value: undefined, done: true };
        rows = b;
        i = 1;
        return { value: b[0], done: false };
      });
      tail = p.then(() => undefined, () => undefined);
      return p;
    },
  };
}

function bare(src) {
  let rows = [];
  let i = 0;
  return {
    [Symbol.asyncIterator]() { return this; },
    next() {
      if (i < rows.length) return Promise.resolve({ value: rows[i++], done: false });
      return src.nextBatch().then((b) => {
        if (b === null) return { value: undefined, done: true };
        rows = b;
        i = 1;
        return { value: b[0], done: false };
      });
    },
  };
}

function plainObject(src) {
  let rows = [];
  let i = 0;
  return {
    [Symbol.asyncIterator]() { return this; },
    next() {
      if (i < rows.length) return { value: rows[i++], done: false };
      return src.nextBatch().then((b) => {
        if (b === null) return { value: undefined, done: true };
        rows = b;
        i = 1;
        return { value: b[0], done: false };
      });
    },
  };
}

function asyncGen(src) {
  return {
    async* [Symbol.asyncIterator]() {
      for (;;) {
        const b = await src.nextBatch();
        if (b === null) return;
        for (let i = 0; i < b.length; i++) yield b[i];
      }
    },
  };
}

async function once(make) {
  let rows = 0;
  let chars = 0;
  const c0 = process.cpuUsage();
  if (make === null) {
    const src = source();
    for (;;) {
      const b = await src.nextBatch();
      if (b === null) break;
      for (let i = 0; i < b.length; i++) { rows++; chars += b[i].length; }
    }
  } else {
    for await (const row of make(source())) { rows++; chars += row.length; }
  }
  const c = process.cpuUsage(c0);
  if (rows !== ROWS || chars === 0) throw new Error(`saw ${rows} rows`);
  return (c.user + c.system) / rows;
}

(async () => {
  const variants = [['batches', null], ['binding', binding], ['bare', bare],
    ['plain object', plainObject], ['async gen', asyncGen]];
  const best = new Map(variants.map(([name]) => [name, Infinity]));
  for (let round = 0; round < 3; round++) {
    for (const [name, make] of variants) best.set(name, Math.min(best.get(name), await once(make)));
  }
  for (const [name] of variants) console.log(`${name.padEnd(13)} ${best.get(name).toFixed(3)} us/row`);
})();
