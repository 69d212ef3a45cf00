import { PrismaPg } from '@prisma/adapter-pg';
import { Prisma, PrismaClient } from '../generated/prisma/client';

export interface DatabaseTimeouts {
  /** Opening a connection, or waiting for a free one in the pool (pg's connectionTimeoutMillis). */
  connectTimeoutMs?: number;
  /** Waiting for one query's answer (pg's query_timeout; unset: no limit). */
  queryTimeoutMs?: number;
}

/**
 * A Prisma client on the pg driver adapter (no native query engine). One per process. The API
 * bounds connecting (config DATABASE_CONNECT_TIMEOUT_MS): without it a request waits as long as
 * the kernel tries to reach a server that is down or unreachable.
 */
export function createPrisma(databaseUrl: string, poolSize = 10, timeouts: DatabaseTimeouts = {}): PrismaClient {
  const adapter = new PrismaPg({
    connectionString: databaseUrl,
    max: poolSize,
    ...(timeouts.connectTimeoutMs ? { connectionTimeoutMillis: timeouts.connectTimeoutMs } : {}),
    ...(timeouts.queryTimeoutMs ? { query_timeout: timeouts.queryTimeoutMs } : {}),
  });
  return new PrismaClient({ adapter });
}

export { Prisma, PrismaClient };
export type * from '../generated/prisma/client';
