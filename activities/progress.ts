import { Context } from '@temporalio/activity';

/** A heartbeat for long streams: at most one a second, however often it is called. */
export function throttledHeartbeat(everyMs = 1_000): (details: Record<string, unknown>) => void {
  const ctx = Context.current();
  let last = 0;
  return (details) => {
    if (Date.now() - last < everyMs) return;
    last = Date.now();
    ctx.heartbeat(details);
  };
}

/**
 * Heartbeats every `everyMs` while `work` runs, so a long step that reports no progress of its
 * own (pg_dump waiting on a lock, a checksum of a large volume) still learns within seconds that
 * its activity timed out or was cancelled: the SDK delivers both only in a heartbeat's answer,
 * and then aborts `Context.current().cancellationSignal`, which kills the step's children.
 */
export async function whileBeating<T>(work: Promise<T>, details: () => Record<string, unknown> = () => ({}), everyMs = 1_000): Promise<T> {
  const ctx = Context.current();
  const timer = setInterval(() => ctx.heartbeat(details()), everyMs);
  try {
    return await work;
  } finally {
    clearInterval(timer);
  }
}
