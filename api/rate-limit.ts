import type { NextFunction, Request, Response } from 'express';
import type { Redis } from '../lib/redis';

/**
 * Fixed one-minute windows per client IP, counted in Redis so every API instance shares
 * them. Over the limit: 429 with Retry-After (seconds to the next window). If Redis does
 * not answer the request is let through: rate limiting must not take the API down.
 */
export function rateLimiter(redis: Redis, perMinute: number, onError?: (err: Error) => void) {
  return async (req: Request, res: Response, next: NextFunction): Promise<void> => {
    const now = Date.now();
    const window = Math.floor(now / 60_000);
    const key = `podex:rl:${req.ip}:${window}`;
    try {
      const [[, count]] = (await redis.multi().incr(key).expire(key, 61).exec()) as [[unknown, number], unknown];
      res.setHeader('RateLimit-Limit', perMinute);
      res.setHeader('RateLimit-Remaining', Math.max(0, perMinute - count));
      if (count > perMinute) {
        const retryAfter = Math.max(1, Math.ceil(((window + 1) * 60_000 - now) / 1000));
        res.setHeader('Retry-After', retryAfter);
        res.status(429).json({ error: 'rate_limited', message: `more than ${perMinute} requests per minute; retry in ${retryAfter}s` });
        return;
      }
    } catch (err) {
      onError?.(err as Error);
    }
    next();
  };
}
