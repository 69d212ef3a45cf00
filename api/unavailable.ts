import type { NextFunction, Request, Response } from 'express';
import type { Logger } from '../lib/logger';
import { unavailableDependency, type Dependency } from '../lib/unavailable';
import { HttpError } from './errors';

const MESSAGES: Record<Dependency, string> = {
  postgres: 'database unavailable',
  temporal: 'workflow service unavailable',
  redis: 'events unavailable',
};
/** What a client is told to wait: about as long as a restarted dependency takes to answer again. */
export const RETRY_AFTER_SECONDS = 5;
/** One warning per dependency per window, with the count of those left out: an outage is not a line per request. */
const LOG_EVERY_MS = 10_000;

/**
 * Error middleware, before the app's last handler: an error that says PostgreSQL, Temporal or
 * Redis cannot be reached becomes `503 {error: 'unavailable', message: 'database unavailable' …}`
 * with Retry-After, logged at warn without a stack (it is not a bug of ours), at most once per
 * window. Any other error goes on unchanged.
 */
export function unavailableErrors(log: Logger) {
  const reported = new Map<Dependency, { at: number; suppressed: number }>();
  return (err: unknown, req: Request, res: Response, next: NextFunction): void => {
    const dependency = unavailableDependency(err);
    if (!dependency || res.headersSent) return next(err);
    const message = MESSAGES[dependency];
    const last = reported.get(dependency);
    const now = Date.now();
    if (!last || now - last.at >= LOG_EVERY_MS) {
      // Prisma's messages quote the calling code first: the last line is the reason.
      const reason = String((err as Error)?.message ?? err).trim().split('\n').pop();
      log.warn({ dependency, reason, method: req.method, path: req.path, suppressed: last?.suppressed ?? 0 }, message);
      reported.set(dependency, { at: now, suppressed: 0 });
    } else {
      last.suppressed++;
    }
    next(new HttpError(503, 'unavailable', message, undefined, { 'Retry-After': String(RETRY_AFTER_SECONDS) }));
  };
}
