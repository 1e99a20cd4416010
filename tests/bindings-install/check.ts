// Type-checked (tsc --noEmit --strict) against the package's index.d.ts; not run.
import { Client, FwError, OPS, Stream, ServerError } from 'fraiseql-wire';

async function main(): Promise<number> {
  const client = new Client('');
  const texts: Stream<string> = client.query('v_user').where('true').limit(10).stream();
  let total = 0;
  for await (const row of texts) total += row.length;
  const filtered: Stream<string> = client.query('v_user')
    .where('/status', 'eq', 'active').where('/email', 'exists').where('/n', 'GT', 10n)
    .where({ path: '/n', op: 'in', value: [1, 2, 3] })
    .whereParams("data->>'email' = $1 OR $2::text IS NULL", ['a@b.c', null])
    .orderByPath('/name', { kind: 'text', collation: 'C', desc: true })
    .orderByPath('/n', { kind: 'numeric' }).stream();
  for await (const row of filtered) total += row.length + OPS.eq;
  const parts: Stream<string> = client.query('v_user').parallel(2, { partitionBy: 'id' })
    .orderBy('id', { desc: true }).stream();
  for await (const row of parts) total += row.length;
  const table: Stream<string> = client.query('users').parallel(3).stream();
  for await (const row of table) total += row.length;
  const parsed: Stream<unknown> = client.query('v_user').stream({ parse: true, batchSize: 64 });
  for await (const rows of parsed.batches()) total += rows.length;
  try {
    client.query('v_missing').stream();
  } catch (e) {
    if (e instanceof ServerError) {
      const f: FwError = e;
      const fields: [string, string, number, string | null] = [f.code, f.status, f.errno, f.sqlstate];
      total += fields.length;
    }
  }
  client.close();
  return total;
}
main();
