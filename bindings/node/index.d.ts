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

export class Query {
  where(sqlPredicate: string): this;
  orderBy(sqlExpr: string, options?: { desc?: boolean; collation?: string | null }): this;
  limit(n: number | bigint): this;
  offset(n: number | bigint): this;
  chunkSize(rows: number): this;
  adaptiveChunking(minRows?: number, maxRows?: number): this;
  maxMemory(bytes: number, warnRatio?: number, failRatio?: number): this;
  readAhead(bytes: number): this;
  readCoalesce(microseconds: number): this;
  describeWait(ms: number | null): this;
  stream(options?: { batchSize?: number; signal?: AbortSignal | null }): Stream;
}

export class Stream implements AsyncIterable<string> {
  next(): Promise<string | null>;
  [Symbol.asyncIterator](): AsyncGenerator<string, void, undefined>;
  pause(reason?: string | null): void;
  resume(): void;
  setPauseTimeout(ms: number): void;
  cancel(): void;
  readonly state: StreamState;
  stats(): Stats;
  close(): void;
}

export class FwError extends Error {
  /** The status name, e.g. 'FW_E_SERVER'. */
  code: string;
  /** The status number, e.g. -6. */
  status: number;
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

export function version(): string;
export function metricsDump(): string;
export function shutdown(timeoutMs?: number): void;
export function liveHandles(): { client: number; stream: number };
