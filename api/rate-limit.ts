import type { NextFunction, Request, Response } from 'express';
import type { Redis } from '../lib/redis';
import { sameSecret, type Principal } from './auth';

export interface RateLimits {
  /** Per client address (as TRUSTED_PROXIES lets the API see it). */
  perIp: number;
  /** Per authenticated user or admin, across every address they use. */
  perPrincipal: number;
  /** For the internal API key, per calling address, in place of the per-address budget users share. */
  internal: number;
  /** The window each budget is counted over, in seconds (60: the limits are per minute; tests shorten it). */
  windowSeconds?: number;
}

/** res.locals key: the request was counted against the internal key's budget. */
const INTERNAL = 'rateLimitedAsInternal';

/**
 * Fixed windows (one minute unless set otherwise) counted in Redis, so every API instance shares
 * them. Every answer states the tightest budget it was counted against — RateLimit-Limit,
 * -Remaining, -Reset (seconds to the next window) and -Policy (`limit;w=seconds`) — so a client
 * that polls (the fleet console) can pace itself. Over the limit: 429 with Retry-After (seconds
 * to the next window). If Redis does not answer the request is let through: rate limiting must
 * not take the API down.
 */
async function spend(redis: Redis, bucket: string, limit: number, windowSeconds: number, res: Response, onError?: (err: Error) => void): Promise<boolean> {
  const now = Date.now();
  const windowMs = windowSeconds * 1000;
  const window = Math.floor(now / windowMs);
  const key = `podex:rl:${bucket}:${windowSeconds === 60 ? '' : `${windowSeconds}s:`}${window}`;
  const reset = Math.max(1, Math.ceil(((window + 1) * windowMs - now) / 1000));
  try {
    const [[, count]] = (await redis.multi().incr(key).expire(key, windowSeconds + 1).exec()) as [[unknown, number], unknown];
    const remaining = Math.max(0, limit - count);
    const shown = Number(res.getHeader('RateLimit-Remaining') ?? Infinity);
    if (remaining <= shown) {
      res.setHeader('RateLimit-Limit', limit);
      res.setHeader('RateLimit-Remaining', remaining);
      res.setHeader('RateLimit-Reset', reset);
      res.setHeader('RateLimit-Policy', `${limit};w=${windowSeconds}`);
    }
    if (count <= limit) return true;
    const retryAfter = reset;
    res.setHeader('Retry-After', retryAfter);
    // The body, if any, is never read: closing the connection stops a client streaming it to us.
    if (res.req.headers['content-length'] || res.req.headers['transfer-encoding']) res.setHeader('Connection', 'close');
    const per = windowSeconds === 60 ? 'minute' : `${windowSeconds} s`;
    res.status(429).json({ error: 'rate_limited', message: `more than ${limit} requests per ${per}; retry in ${retryAfter}s` });
    return false;
  } catch (err) {
    onError?.(err as Error);
    return true;
  }
}

/**
 * The first limit, before authentication and before any body is read: per client address, or
 * the internal key's own budget when the request carries the right key (a wrong key counts
 * against its address, and authentication refuses it next).
 */
export function addressLimiter(redis: Redis, limits: RateLimits, internalApiKey: string, addressOf: (req: Request) => string, onError?: (err: Error) => void) {
  return async (req: Request, res: Response, next: NextFunction): Promise<void> => {
    const key = req.get('x-internal-api-key');
    if (key !== undefined && sameSecret(key, internalApiKey)) {
      res.locals[INTERNAL] = true;
      if (await spend(redis, `internal:${addressOf(req)}`, limits.internal, limits.windowSeconds ?? 60, res, onError)) next();
      return;
    }
    if (await spend(redis, `ip:${addressOf(req)}`, limits.perIp, limits.windowSeconds ?? 60, res, onError)) next();
  };
}

/** The second limit, after authentication and still before the body is read: per user or admin. */
export function principalLimiter(redis: Redis, limits: RateLimits, onError?: (err: Error) => void) {
  return async (_req: Request, res: Response, next: NextFunction): Promise<void> => {
    if (res.locals[INTERNAL]) return next();
    const p = res.locals.principal as Principal | undefined;
    if (!p || (await spend(redis, `user:${p.id}`, limits.perPrincipal, limits.windowSeconds ?? 60, res, onError))) next();
  };
}
