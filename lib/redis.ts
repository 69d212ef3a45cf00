import { Redis } from 'ioredis';

/** One long-lived Redis connection; callers that subscribe must `duplicate()` it. */
export function createRedis(url: string): Redis {
  return new Redis(url, { maxRetriesPerRequest: 3, enableAutoPipelining: true, lazyConnect: false });
}

export type { Redis };
