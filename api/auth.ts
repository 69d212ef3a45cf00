import { timingSafeEqual } from 'node:crypto';
import type { NextFunction, Request, Response } from 'express';
import { jwtVerify, SignJWT } from 'jose';
import { HttpError } from './errors';

export type Role = 'admin' | 'user';

export interface Principal {
  /** Who acted: a user id, an admin's name, or `service:internal`. */
  id: string;
  role: Role;
}

const ISSUER = 'podex';
const AUDIENCE = 'podex-orchestrator';
/** A token without `exp` would be good forever: refused, as a leaked one must run out. */
const VERIFY = { issuer: ISSUER, audience: AUDIENCE, algorithms: ['HS256'], requiredClaims: ['exp'] };

/** A principal's id goes into 255-character columns (owner_id, actor, user_id) and PostgreSQL text: longer, or with NUL, it would fail there (a 500). */
const validSubject = (sub: string | undefined): sub is string => !!sub && sub.length <= 255 && !sub.includes('\0');

/** Mints a token for `sub` with `role` (the token command and tests use this). */
export async function mintToken(secret: string, sub: string, role: Role, ttl = '12h'): Promise<string> {
  return new SignJWT({ role })
    .setProtectedHeader({ alg: 'HS256' })
    .setSubject(sub)
    .setIssuer(ISSUER)
    .setAudience(AUDIENCE)
    .setIssuedAt()
    .setExpirationTime(ttl)
    .sign(new TextEncoder().encode(secret));
}

/** Whether two secrets are equal, in time that does not depend on where they differ. */
export function sameSecret(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

/** Verifies a user or admin JWT; null when it is not valid (expired, wrong key, no subject or role). */
export function bearerVerifier(jwtSecret: string): (token: string) => Promise<(Principal & { exp?: number }) | null> {
  const key = new TextEncoder().encode(jwtSecret);
  return async (token) => {
    try {
      const { payload } = await jwtVerify(token, key, VERIFY);
      if (!validSubject(payload.sub) || (payload.role !== 'admin' && payload.role !== 'user')) return null;
      return { id: payload.sub, role: payload.role, exp: payload.exp };
    } catch {
      return null;
    }
  };
}

/**
 * Resolves the caller: an `X-Internal-API-Key` (service-to-service, acts as admin) or a
 * `Bearer` JWT signed with JWT_SECRET_KEY carrying `role: admin | user`.
 */
export function authenticator(jwtSecret: string, internalApiKey: string) {
  const key = new TextEncoder().encode(jwtSecret);
  return async (req: Request, res: Response, next: NextFunction): Promise<void> => {
    try {
      const apiKey = req.get('x-internal-api-key');
      if (apiKey !== undefined) {
        if (!sameSecret(apiKey, internalApiKey)) throw new HttpError(401, 'unauthorized', 'invalid internal API key');
        res.locals.principal = { id: 'service:internal', role: 'admin' } satisfies Principal;
        return next();
      }
      const m = /^Bearer\s+(.+)$/i.exec(req.get('authorization') ?? '');
      if (!m) throw new HttpError(401, 'unauthorized', 'missing credentials: send a Bearer token or X-Internal-API-Key');
      let payload;
      try {
        ({ payload } = await jwtVerify(m[1], key, VERIFY));
      } catch {
        throw new HttpError(401, 'unauthorized', 'invalid or expired token');
      }
      if (!payload.sub || (payload.role !== 'admin' && payload.role !== 'user')) {
        throw new HttpError(401, 'unauthorized', 'token lacks a subject or role');
      }
      if (!validSubject(payload.sub)) throw new HttpError(401, 'unauthorized', 'token subject must be at most 255 characters, without NUL');
      res.locals.principal = { id: payload.sub, role: payload.role } satisfies Principal;
      next();
    } catch (err) {
      next(err);
    }
  };
}

export function principal(res: Response): Principal {
  return res.locals.principal as Principal;
}

/** Admins only (an internal API key counts as admin). */
export function requireAdmin(_req: Request, res: Response, next: NextFunction): void {
  if (principal(res)?.role !== 'admin') return next(new HttpError(403, 'forbidden', 'admin role required'));
  next();
}
