/**
 * Which dependency an error says is out of reach, if any: PostgreSQL (refused, timed out,
 * sessions cut by a shutdown, no connection free), Temporal (unavailable or past its deadline),
 * Redis (events). A request that fails with one of these is a 503 the client may retry, not
 * the API's own fault (a 500).
 */
export type Dependency = 'postgres' | 'temporal' | 'redis';

/** Raised where a Redis outage stops a feature that cannot degrade (an event stream). */
export class RedisUnavailableError extends Error {
  override name = 'RedisUnavailableError';
}

/** Prisma's codes for a server it cannot reach or that dropped the connection, and for no pool connection in time. */
const PRISMA_CODES = new Set(['P1001', 'P1002', 'P1008', 'P1017', 'P2024']);
/** The pg driver adapter's kinds for the same. */
const ADAPTER_KINDS = new Set(['DatabaseNotReachable', 'ConnectionClosed', 'SocketTimeout', 'TooManyConnections']);
/** PostgreSQL's own: connection exceptions (08…), shutting down or starting (57P01–57P03), too many connections. */
const PG_STATES = /^(08...|57P0[123]|53300)$/;
/**
 * The pg driver's own messages when it never got, or lost, a connection (they reach Prisma
 * unconverted). Bare socket codes (ECONNREFUSED) are left out: a Docker engine's say the same.
 */
const PG_MESSAGES =
  /Connection terminated|timeout exceeded when trying to connect|Query read timeout|Client has encountered a connection error|the database system is (shutting down|starting up|in recovery mode)|terminating connection due to administrator command/;

/** gRPC UNAVAILABLE and DEADLINE_EXCEEDED, as the Temporal client reports a server it cannot reach. */
const GRPC_UNAVAILABLE = 14;
const GRPC_DEADLINE_EXCEEDED = 4;

function chain(err: unknown): Record<string, unknown>[] {
  const out: Record<string, unknown>[] = [];
  let e = err;
  while (e && typeof e === 'object' && out.length < 8) {
    out.push(e as Record<string, unknown>);
    e = (e as { cause?: unknown }).cause;
  }
  return out;
}

function databaseDown(e: Record<string, unknown>): boolean {
  if (typeof e.code === 'string' && PRISMA_CODES.has(e.code)) return true;
  if (typeof e.errorCode === 'string' && PRISMA_CODES.has(e.errorCode)) return true;
  const adapter = (e.meta as { driverAdapterError?: { cause?: { kind?: string; originalCode?: string } } } | undefined)?.driverAdapterError?.cause;
  if (adapter?.kind && ADAPTER_KINDS.has(adapter.kind)) return true;
  if (adapter?.originalCode && PG_STATES.test(adapter.originalCode)) return true;
  const own = e as { kind?: string; originalCode?: string };
  if (own.kind && ADAPTER_KINDS.has(own.kind)) return true;
  if (typeof own.originalCode === 'string' && PG_STATES.test(own.originalCode)) return true;
  return typeof e.message === 'string' && PG_MESSAGES.test(e.message);
}

function temporalDown(e: Record<string, unknown>): boolean {
  // A ServiceError's cause is the gRPC error; grpc-js errors carry the numeric status code.
  if ((e.code === GRPC_UNAVAILABLE || e.code === GRPC_DEADLINE_EXCEEDED) && typeof e.details === 'string') return true;
  return false;
}

/** The dependency `err` (or an error in its cause chain) says is unavailable, or null for any other error. */
export function unavailableDependency(err: unknown): Dependency | null {
  const errors = chain(err);
  if (errors.some((e) => e instanceof RedisUnavailableError)) return 'redis';
  if (errors.some(temporalDown)) return 'temporal';
  if (errors.some(databaseDown)) return 'postgres';
  return null;
}
