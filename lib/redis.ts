import { Redis } from 'ioredis';

/**
 * One long-lived Redis connection; callers that subscribe must `duplicate()` it (the copy
 * keeps these options). With `commandTimeoutMs` (the API: REDIS_COMMAND_TIMEOUT_MS) every
 * command answers or fails within it, also one queued while the connection is re-established
 * or sent to a server that hangs, and waits through at most one reconnect attempt: Redis
 * carries rate limits, caches and events, which degrade without it, so a request must never
 * wait on its reconnect loop. The worker leaves it unset: an activity may wait out a loaded
 * machine's slow answer rather than fail and be retried. Either way the connection keeps
 * reconnecting (ioredis's back-off, at most 2 s apart) and a subscriber subscribes again once
 * it is back.
 */
export function createRedis(url: string, opts: { commandTimeoutMs?: number } = {}): Redis {
  const bounded = opts.commandTimeoutMs ? { maxRetriesPerRequest: 1, commandTimeout: opts.commandTimeoutMs } : { maxRetriesPerRequest: 3 };
  return new Redis(url, { ...bounded, enableAutoPipelining: true, lazyConnect: false });
}

export type { Redis };
