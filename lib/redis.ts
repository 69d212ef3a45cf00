import { Redis } from 'ioredis';

/**
 * One long-lived Redis connection; callers that subscribe must `duplicate()` it (the copy
 * keeps these options). Every command answers or fails within `commandTimeoutMs`, also one
 * queued while the connection is re-established or sent to a server that hangs, and waits
 * through at most one reconnect attempt: Redis carries rate limits, caches and events, which
 * degrade without it, so a request must never wait on its reconnect loop. The connection
 * itself keeps reconnecting (ioredis's default back-off, at most 2 s apart) and a subscriber
 * subscribes again once it is back.
 */
export function createRedis(url: string, opts: { commandTimeoutMs?: number } = {}): Redis {
  return new Redis(url, { maxRetriesPerRequest: 1, commandTimeout: opts.commandTimeoutMs ?? 1_000, enableAutoPipelining: true, lazyConnect: false });
}

export type { Redis };
