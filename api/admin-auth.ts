/**
 * Forward auth for operator tools the platform's proxy fronts (the Temporal UI): `GET
 * /proxy/admin-auth` answers 204 for an admin and nothing else. Browsers cannot attach a
 * Bearer token to a page load, so the admin token is also taken as the password of HTTP Basic
 * (any user name): a 401 carries `WWW-Authenticate: Basic` and the browser asks for it, then
 * sends it with every request of that origin, the UI's own API calls included.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from '../lib/logger';
import { VerifiedTokens } from '../lib/verified-tokens';
import { bearerVerifier } from './auth';

export const ADMIN_AUTH_PATH = '/proxy/admin-auth';
export const ADMIN_AUTH_REALM = 'Podex operators';
const VERIFIED_CACHE_SIZE = 1_000;

/** The token a request carries: a Bearer token, or the password of Basic credentials. */
export function presentedToken(authorization: string | undefined): string | undefined {
  const m = /^(Bearer|Basic)\s+(\S+)\s*$/i.exec(authorization ?? '');
  if (!m) return undefined;
  if (m[1].toLowerCase() === 'bearer') return m[2];
  const decoded = Buffer.from(m[2], 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  return colon >= 0 && colon < decoded.length - 1 ? decoded.slice(colon + 1) : undefined;
}

export function createAdminAuth(deps: { jwtSecret: string; logger: Logger }) {
  const verify = bearerVerifier(deps.jwtSecret);
  const log = deps.logger.child({ component: 'admin-auth' });
  // The UI sends the same credentials with each of its requests: a verified admin token is
  // kept until it expires, so the proxy's question is a map lookup. Refusals are never kept.
  const verified = new VerifiedTokens<{ exp?: number }>(VERIFIED_CACHE_SIZE);

  const send = (res: ServerResponse, status: number, error?: string, message?: string) => {
    const body = error ? JSON.stringify({ error, message }) : '';
    res.writeHead(status, {
      'cache-control': 'no-store',
      'content-length': Buffer.byteLength(body),
      ...(body ? { 'content-type': 'application/json' } : {}),
      ...(status === 401 ? { 'www-authenticate': `Basic realm="${ADMIN_AUTH_REALM}", charset="UTF-8"` } : {}),
    });
    res.end(body);
  };

  async function decide(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const token = presentedToken(req.headers.authorization);
    if (!token) return send(res, 401, 'unauthorized', 'sign in with an admin token (as the password)');
    if (verified.recall(token)) return send(res, 204);
    const who = await verify(token);
    if (!who) return send(res, 401, 'unauthorized', 'invalid or expired token');
    if (who.role !== 'admin') {
      log.warn({ sub: who.id }, 'refused a non-admin');
      return send(res, 403, 'forbidden', 'admin role required');
    }
    verified.remember(token, { exp: who.exp });
    log.info({ sub: who.id }, 'admin signed in through the proxy');
    send(res, 204);
  }

  /** The handler the API's server gives `GET /proxy/admin-auth` to, before Express. */
  return function handle(req: IncomingMessage, res: ServerResponse): void {
    decide(req, res).catch((err: Error) => {
      log.error({ err: err.message }, 'admin forward auth failed');
      if (!res.headersSent) send(res, 503, 'unavailable', 'try again');
    });
  };
}
