'use strict';
// Stream v_user through the installed package (run from outside the repository).
const fs = require('fs');
const path = require('path');
const fw = require('fraiseql-wire');

async function main() {
  const where = fs.realpathSync(process.argv[2]);
  if (!fs.realpathSync(fw.libraryPath).startsWith(where)) {
    throw new Error(`library from ${fw.libraryPath}, expected under ${where}`);
  }
  const pkg = require.resolve('fraiseql-wire');
  if (!pkg.startsWith(path.join(process.cwd(), 'node_modules'))) throw new Error(`package from ${pkg}`);
  const client = new fw.Client('');
  const ns = [];
  for await (const r of client.query('v_user').stream({ parse: true })) ns.push(r.n);
  ns.sort((a, b) => a - b);
  if (ns.length !== 1000 || ns.some((n, i) => n !== i + 1)) throw new Error(`rows: ${ns.length}`);
  try {
    client.query('v_missing').stream();
    throw new Error('no error for a missing view');
  } catch (e) {
    if (!(e instanceof fw.ServerError) || e.code !== '42P01' || e.status !== 'FW_E_SERVER') throw e;
  }
  client.close();
  console.log(`node: ${ns.length} rows, library ${fw.libraryPath}`);
}
main().catch((e) => { console.error(e); process.exit(1); });
