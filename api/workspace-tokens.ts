import { createHmac, randomUUID } from 'node:crypto';
import { jwtVerify, SignJWT } from 'jose';
import type { Role } from './auth';

/**
 * The credentials a workspace host accepts besides an API token, each a JWT signed with a key
 * of its own (derived from JWT_SECRET_KEY, so none of them is ever a valid API token):
 *  - a ticket: one use, a minute, for one host; `GET /workspaces/:id/open` hands it out;
 *  - a session: the host's own cookie, which a ticket or a share link is exchanged for;
 *  - a share link: signed, expiring, for one preview port of one workspace.
 */
export type TokenKind = 'ticket' | 'session' | 'share';

export interface HostGrant {
  /** Who: a user id, or `share:{id}` for a share link's visitor. */
  sub: string;
  role: Role | 'share';
  /** The one host name (no port) this grant opens. */
  host: string;
  /** Unique id: a ticket is redeemed once. */
  jti: string;
  /** Seconds since the epoch. */
  exp: number;
}

const ISSUER = 'podex-workspace-access';
const ALG = 'HS256';

export class WorkspaceTokens {
  private readonly key: Uint8Array;

  constructor(jwtSecret: string) {
    this.key = new Uint8Array(createHmac('sha256', jwtSecret).update('podex workspace access v1').digest());
  }

  async mint(kind: TokenKind, grant: Omit<HostGrant, 'jti' | 'exp'> & { jti?: string }, ttlSeconds: number): Promise<{ token: string; exp: number; jti: string }> {
    const exp = Math.floor(Date.now() / 1000) + ttlSeconds;
    const jti = grant.jti ?? randomUUID();
    const token = await new SignJWT({ role: grant.role, host: grant.host })
      .setProtectedHeader({ alg: ALG })
      .setIssuer(ISSUER)
      .setAudience(`podex-ws-${kind}`)
      .setSubject(grant.sub)
      .setJti(jti)
      .setExpirationTime(exp)
      .sign(this.key);
    return { token, exp, jti };
  }

  /** The grant, or why not: `expired` (a clear 401 for share links) or `invalid`. */
  async verify(kind: TokenKind, token: string): Promise<{ ok: true; grant: HostGrant } | { ok: false; reason: 'expired' | 'invalid' }> {
    try {
      const { payload } = await jwtVerify(token, this.key, { issuer: ISSUER, audience: `podex-ws-${kind}`, algorithms: [ALG] });
      if (typeof payload.sub !== 'string' || typeof payload.host !== 'string' || typeof payload.jti !== 'string' || typeof payload.exp !== 'number') return { ok: false, reason: 'invalid' };
      const role = payload.role;
      if (role !== 'admin' && role !== 'user' && role !== 'share') return { ok: false, reason: 'invalid' };
      return { ok: true, grant: { sub: payload.sub, role, host: payload.host, jti: payload.jti, exp: payload.exp } };
    } catch (err) {
      return { ok: false, reason: (err as { code?: string }).code === 'ERR_JWT_EXPIRED' ? 'expired' : 'invalid' };
    }
  }
}
