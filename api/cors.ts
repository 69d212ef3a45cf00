import type { NextFunction, Request, Response } from 'express';

const ALLOW_METHODS = 'GET, POST, PUT, PATCH, DELETE';
const ALLOW_HEADERS = 'Authorization, Content-Type, Idempotency-Key';
const EXPOSE_HEADERS = 'RateLimit-Limit, RateLimit-Remaining, RateLimit-Reset, RateLimit-Policy, Retry-After';

/**
 * CORS for the origins in CORS_ORIGINS (`*` outside production: any). An allowed origin gets
 * its own origin back; any other gets no CORS headers, so its browser withholds the answer.
 * Preflights are answered here, before the rate limit and authentication (browsers send them
 * without credentials). Tokens travel in headers, never cookies: no Allow-Credentials.
 */
export function cors(origins: string[]) {
  const allowed = new Set(origins);
  const any = allowed.has('*');
  return (req: Request, res: Response, next: NextFunction): void => {
    const origin = req.get('origin');
    const ok = origin !== undefined && (any || allowed.has(origin));
    if (origins.length) res.vary('Origin');
    if (ok) {
      res.setHeader('Access-Control-Allow-Origin', any ? '*' : origin);
      res.setHeader('Access-Control-Expose-Headers', EXPOSE_HEADERS);
    }
    if (req.method === 'OPTIONS' && origin !== undefined && req.get('access-control-request-method')) {
      if (ok) {
        res.setHeader('Access-Control-Allow-Methods', ALLOW_METHODS);
        res.setHeader('Access-Control-Allow-Headers', ALLOW_HEADERS);
        res.setHeader('Access-Control-Max-Age', '600');
      }
      res.status(204).end();
      return;
    }
    next();
  };
}
