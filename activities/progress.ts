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
