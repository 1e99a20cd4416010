// Types for the fraiseql-wire Node binding (index.js).

export type StreamState = 'running' | 'paused' | 'completed' | 'failed' | 'cancelled' | 'invalid' | 'closed';

export interface Stats {
  state: StreamState;
  items_buffered: number;
  bytes_buffered: number;
  estimated_memory: number;
  total_rows_received: number;
  total_rows_yielded: number;
  total_rows_filtered: number;
  total_bytes_received: number;
  current_chunk_size: number;
  pause_count: number;
  paused_ms_total: number;
  time_to_first_row_us: number;
  elapsed_us: number;
  memory_limit: number;
  peak_memory: number;
  memory_warnings: number;
  chunks_received: number;
  pause_timeouts: number;
}

export class Client {
  constructor(conninfo?: string);
  query(source: string): Query;
  close(): void;
}

/** Operator names of `Query#where` (case-insensitive). */
export type Op =
  | 'eq' | 'ne' | 'lt' | 'le' | 'gt' | 'ge' | 'in' | 'not_in' | 'like' | 'ilike'
  | 'starts_with' | 'ends_with' | 'contains_text' | 'icontains_text' | 'exists' | 'not_exists'
  | 'json_contains' | 'array_overlaps' | 'array_length_eq' | 'array_length_gt'
  | 'array_length_lt' | 'matches';

/** The fw_op value of each operator name. */
export const OPS: Readonly<Record<Op, number>>;

/** A value of a typed predicate, encoded to JSON by the binding (bigint as an exact number). */
export type JsonValue =
  | string | number | bigint | boolean | null | JsonValue[] | { [key: string]: JsonValue }
  | { toJSON(): unknown };

/** A typed predicate: the value at the JSON pointer `path` compared by `op` with `value`
 * (no value for 'exists' / 'not_exists'). */
export interface Predicate {
  path: string;
  op: Op | Uppercase<Op>;
  value?: JsonValue;
}

/** A value of `whereParams`, sent as text (null/undefined: SQL NULL). */
export type ParamValue = string | number | bigint | boolean | Date | null | undefined | JsonValue;

export class Query {
  /** A trusted SQL predicate (the application's own text, never user input). */
  where(sqlPredicate: string): this;
  /** A typed predicate on a JSON path; the value is sent as a bound parameter. */
  where(jsonPointer: string, op: 'exists' | 'not_exists' | 'EXISTS' | 'NOT_EXISTS'): this;
  where(jsonPointer: string, op: Op | Uppercase<Op>, value: JsonValue): this;
  where(predicate: Predicate): this;
  /** A SQL predicate whose `$1..$n` are bound to `values`. */
  whereParams(sqlPredicate: string, values?: ParamValue[]): this;
  orderBy(sqlExpr: string, options?: { desc?: boolean; collation?: string | null }): this;
  /** ORDER BY the value at a JSON pointer, as text (optionally in a collation) or numeric. */
  orderByPath(jsonPointer: string,
    options?: { kind?: 'text' | 'numeric'; collation?: string | null; desc?: boolean }): this;
  limit(n: number | bigint): this;
  offset(n: number | bigint): this;
  chunkSize(rows: number): this;
  adaptiveChunking(minRows?: number, maxRows?: number): this;
  maxMemory(bytes: number, warnRatio?: number, failRatio?: number): this;
  readAhead(bytes: number): this;
  /** Read `partitions` disjoint parts at once over as many connections, merged into one
   * stream; a view needs `partitionBy` (an integer SQL expression over its columns). */
  parallel(partitions: number, options?: { partitionBy?: string | null }): this;
  readCoalesce(microseconds: number): this;
  describeWait(ms: number | null): this;
  /** Rows as JSON text (the default). */
  stream(options?: StreamOptions & { parse?: false }): Stream<string>;
  /** Rows parsed with JSON.parse. */
  stream(options: StreamOptions & { parse: true }): Stream<unknown>;
}

export interface StreamOptions {
  /** Rows per call into the library (default 256). */
  batchSize?: number;
  /** Bytes per call into the library (default 1 MiB; at least one row). */
  maxBytes?: number;
  /** While rows flow, milliseconds a consumer that caught up with the server waits on a
   * timer before a worker thread waits for rows (default 1; 0: at once). */
  pollMs?: number;
  /** Cancels the stream when aborted. */
  signal?: AbortSignal | null;
}

/** A running query's rows: strings of JSON text, or parsed values with `{ parse: true }`. */
export class Stream<Row = string> implements AsyncIterable<Row> {
  /** The next row, or null at the end. */
  next(): Promise<Row | null>;
  [Symbol.asyncIterator](): AsyncIterator<Row>;
  /** One array of rows per call into the library (the fastest way to read). */
  batches(): AsyncIterableIterator<Row[]>;
  pause(reason?: string | null): void;
  resume(): void;
  setPauseTimeout(ms: number): void;
  cancel(): void;
  readonly state: StreamState;
  stats(): Stats;
  close(): void;
}

export class FwError extends Error {
  /** As in node-postgres: the SQLSTATE of a server error ('42P01'), else the status name. */
  code: string;
  /** The status name, e.g. 'FW_E_SERVER'. */
  status: string;
  /** The status number, e.g. -6. */
  errno: number;
  sqlstate: string | null;
  detail: string | null;
  hint: string | null;
  position: string | null;
}
export class InvalidArgumentError extends FwError {}
export class NullPointerError extends InvalidArgumentError {}
export class ConnectError extends FwError {}
export class AuthError extends ConnectError {}
export class TLSError extends ConnectError {}
export class ServerError extends FwError {}
export class ProtocolError extends FwError {}
export class SchemaError extends FwError {}
export class MemoryLimitError extends FwError {}
export class CancelledError extends FwError {}
export class ConnectionLostError extends FwError {}
export class StateError extends FwError {}
export class PanicError extends FwError {}
export class ShutdownError extends FwError {}

/** The path (or name) the library was loaded from. */
export const libraryPath: string;
export function version(): string;
export function metricsDump(): string;
export function shutdown(timeoutMs?: number): void;
export function liveHandles(): { client: number; stream: number };
