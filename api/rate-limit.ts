import type { NextFunction, Request, Response } from 'express';
import type { Redis } from '../lib/redis';
import { sameSecret, type Principal } from './auth';
import { rateLimitFailOpen } from './metrics';

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

/** After Redis fails once, how long the limiters let requests through without asking it (a hung server costs one timeout, not one per request). */
const SKIP_AFTER_FAILURE_MS = 5_000;
/** How often an outage is reported through onError (with how many requests went through uncounted meanwhile). */
const REPORT_EVERY_MS = 10_000;

interface Health {
  skipUntil: number;
  reportedAt: number;
  letThrough: number;
}
/** Connection states that mean Redis was lost (a first connect, still `connecting`, is waited for: its commands queue). */
const DOWN = new Set(['reconnecting', 'close', 'end']);
/** Per Redis connection, shared by the address and user limiters of an app. */
const health = new WeakMap<Redis, Health>();

/**
 * The limits fail open: without Redis a request goes through uncounted. They protect the API
 * from floods (per address, per user); they are not billing or quotas (those are in PostgreSQL),
 * so a Redis outage should cost that protection for a while, not the API itself. Each request let
 * through is counted (podex_rate_limit_fail_open_total) and the outage reported when it begins,
 * then at most every 10 s while it lasts.
 */
function failOpen(h: Health, limit: string, err: Error, onError?: (err: Error) => void): true {
  rateLimitFailOpen.inc({ limit });
  h.letThrough++;
  const now = Date.now();
  if (now - h.reportedAt >= REPORT_EVERY_MS) {
    onError?.(new Error(`${err.message}; ${h.letThrough} request(s) let through uncounted since the last report`));
    h.reportedAt = now;
    h.letThrough = 0;
  }
  return true;
}

/**
 * Fixed windows (one minute unless set otherwise) counted in Redis, so every API instance shares
 * them. Every answer states the tightest budget it was counted against — RateLimit-Limit,
 * -Remaining, -Reset (seconds to the next window) and -Policy (`limit;w=seconds`) — so a client
 * that polls (the fleet console) can pace itself. Over the limit: 429 with Retry-After (seconds
 * to the next window). Without Redis: see failOpen. A connection known lost is not asked at
 * all, and after a failure (a command timeout: a hung server) Redis is left alone for a few
 * seconds, so no request waits on it.
 */
async function spend(redis: Redis, bucket: string, limit: number, windowSeconds = 60, res: Response, onError?: (err: Error) => void): Promise<boolean> {
  const now = Date.now();
  let h = health.get(redis);
  if (!h) health.set(redis, (h = { skipUntil: 0, reportedAt: 0, letThrough: 0 }));
  const kind = bucket.slice(0, bucket.indexOf(':'));
  if (DOWN.has(redis.status)) return failOpen(h, kind, new Error(`redis connection ${redis.status}`), onError);
  if (now < h.skipUntil) return failOpen(h, kind, new Error('redis failed within the last few seconds'), onError);
  const windowMs = windowSeconds * 1000;
  const window = Math.floor(now / windowMs);
  const key = `podex:rl:${bucket}:${windowSeconds === 60 ? '' : `${windowSeconds}s:`}${window}`;
  const reset = Math.max(1, Math.ceil(((window + 1) * windowMs - now) / 1000));
  try {
    const [[, count]] = (await redis.multi().incr(key).expire(key, windowSeconds + 1).exec()) as [[unknown, number], unknown];
    // Redis answers: the next outage is reported as soon as it begins.
    h.reportedAt = 0;
    h.letThrough = 0;
    const remaining = Math.max(0, limit - count);
    const shown = Number(res.getHeader('RateLimit-Remaining') ?? Infinity);
    if (remaining <= shown) {
      res.setHeader('RateLimit-Limit', limit);
      res.setHeader('RateLimit-Remaining', remaining);
      res.setHeader('RateLimit-Reset', reset);
      res.setHeader('RateLimit-Policy', `${limit};w=${windowSeconds}`);
    }
    if (count <= limit) return true;
    res.setHeader('Retry-After', reset);
    // The body, if any, is never read: closing the connection stops a client streaming it to us.
    if (res.req.headers['content-length'] || res.req.headers['transfer-encoding']) res.setHeader('Connection', 'close');
    const per = windowSeconds === 60 ? 'minute' : `${windowSeconds} s`;
    res.status(429).json({ error: 'rate_limited', message: `more than ${limit} requests per ${per}; retry in ${reset}s` });
    return false;
  } catch (err) {
    h.skipUntil = Date.now() + SKIP_AFTER_FAILURE_MS;
    return failOpen(h, kind, err as Error, onError);
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
      if (await spend(redis, `internal:${addressOf(req)}`, limits.internal, limits.windowSeconds, res, onError)) next();
      return;
    }
    if (await spend(redis, `ip:${addressOf(req)}`, limits.perIp, limits.windowSeconds, res, onError)) next();
  };
}

/** The second limit, after authentication and still before the body is read: per user or admin. */
export function principalLimiter(redis: Redis, limits: RateLimits, onError?: (err: Error) => void) {
  return async (_req: Request, res: Response, next: NextFunction): Promise<void> => {
    if (res.locals[INTERNAL]) return next();
    const p = res.locals.principal as Principal | undefined;
    if (!p || (await spend(redis, `user:${p.id}`, limits.perPrincipal, limits.windowSeconds, res, onError))) next();
  };
}
