/**
 * Users reach their workspaces through the Workspace Proxy (Caddy): its configuration never
 * changes; for each request it asks `GET /proxy/auth` here (forward auth), which checks who is
 * asking and answers either 2xx naming the upstream (the workspace's server's private address
 * and the host port Docker chose) or the answer the user gets (401, a sign-in redirect,
 * 404, 503 "moving" …). A workspace's start, stop or move changes no proxy configuration, so
 * no one's open connection is ever cut by someone else's change.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { Router } from 'express';
import type { Duplex } from 'node:stream';
import { parseWorkspaceHost, readCookie, routeFor, withoutCookie, workspaceHostname, workspaceUrl, type RouteRow } from '../domain/workspace-routes';
import type { Logger } from '../lib/logger';
import type { PrismaClient } from '../lib/prisma';
import type { Redis } from '../lib/redis';
import type { RouteTable } from '../lib/route-table';
import { VerifiedTokens } from '../lib/verified-tokens';
import { bearerVerifier, principal, requireAdmin } from './auth';
import { HttpError, notFound, parse, rawAnswer, route } from './errors';
import { openWorkspaceQuery, shareWorkspaceBody, uuidParam } from './schemas';
import { WorkspaceTokens } from './workspace-tokens';

/** The cookie a workspace host sets for itself (host-only: no other host ever receives it). */
export const SESSION_COOKIE = 'podex_ws';
/** Query parameters that carry a credential to a workspace host; the proxy never passes them on. */
export const TICKET_PARAM = 'podex_ticket';
export const SHARE_PARAM = 'podex_share';
/** Headers of the forward-auth answer that the proxy copies into the request it forwards. */
export const UPSTREAM_HEADER = 'X-Podex-Upstream';
export const COOKIE_HEADER = 'X-Podex-Cookie';
const TICKET_TTL_SECONDS = 60;
const VERIFIED_CACHE_SIZE = 10_000;

export interface Answer {
  status: number;
  headers: Record<string, string>;
  body: string;
}

export interface WorkspaceAccessDeps {
  prisma: PrismaClient;
  redis: Redis;
  routes: RouteTable;
  logger: Logger;
  jwtSecret: string;
  baseUrl: string;
  signInUrl: string;
  sessionMinutes: number;
}

const escapeHtml = (s: string) => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

export function createWorkspaceAccess(deps: WorkspaceAccessDeps) {
  const base = new URL(deps.baseUrl);
  const domain = base.hostname;
  const secure = base.protocol === 'https:';
  const tokens = new WorkspaceTokens(deps.jwtSecret);
  const verifyBearer = bearerVerifier(deps.jwtSecret);
  const log = deps.logger.child({ component: 'workspace-access' });

  /**
   * Every proxied request carries the same token or cookie again: a verified one is kept until
   * it expires (a bounded map, emptied when full), so the proxy's question costs a map lookup.
   * One-use tickets and share links never enter it.
   */
  const verified = new VerifiedTokens<{ sub: string; role: string; host?: string; exp?: number }>(VERIFIED_CACHE_SIZE);
  const remember = verified.remember.bind(verified);
  const recall = verified.recall.bind(verified);

  const reply = (status: number, browser: boolean, error: string, message: string, extra: Record<string, string> = {}): Answer => {
    if (browser) {
      const body = `<!doctype html><meta charset="utf-8"><title>${escapeHtml(message)}</title><body style="font-family:sans-serif;margin:4em auto;max-width:40em"><h1>${escapeHtml(message)}</h1><p>Podex workspace · ${status}</p></body>`;
      return { status, headers: { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store', ...extra }, body };
    }
    return { status, headers: { 'content-type': 'application/json', 'cache-control': 'no-store', ...extra }, body: JSON.stringify({ error, message }) };
  };

  const sessionCookie = (token: string, maxAge: number) => `${SESSION_COOKIE}=${token}; Path=/; HttpOnly; SameSite=Lax; Max-Age=${maxAge}${secure ? '; Secure' : ''}`;

  /** The route row, read from the registry if this process has not seen it yet (a brand-new workspace). */
  async function routeOf(id: string): Promise<RouteRow | undefined> {
    await deps.routes.start();
    if (!deps.routes.get(id)) await deps.routes.refresh(id);
    return deps.routes.get(id);
  }

  /** Trades a ticket or a share link in the URL for this host's own cookie, and sends the browser back without it. */
  async function exchange(url: URL, hostname: string, browser: boolean): Promise<Answer> {
    const ticket = url.searchParams.get(TICKET_PARAM);
    const share = url.searchParams.get(SHARE_PARAM);
    url.searchParams.delete(TICKET_PARAM);
    url.searchParams.delete(SHARE_PARAM);
    const kind = ticket ? 'ticket' : 'share';
    const v = await tokens.verify(kind, (ticket ?? share)!);
    if (!v.ok || v.grant.host !== hostname) {
      const what = kind === 'ticket' ? 'sign-in ticket' : 'share link';
      return reply(401, browser, 'unauthorized', v.ok ? `this ${what} is for another workspace` : `this ${what} is ${v.reason === 'expired' ? 'expired' : 'not valid'}`);
    }
    const g = v.grant;
    if (kind === 'ticket') {
      // One use: a ticket seen in a log or a browser's history opens nothing.
      const first = await deps.redis.set(`podex:ws-ticket:${g.jti}`, '1', 'EX', TICKET_TTL_SECONDS * 2, 'NX');
      if (first !== 'OK') return reply(401, browser, 'unauthorized', 'this sign-in ticket was used already');
    }
    const now = Math.floor(Date.now() / 1000);
    const ttl = Math.max(1, Math.min(deps.sessionMinutes * 60, kind === 'share' ? g.exp - now : Infinity));
    const session = await tokens.mint('session', { sub: kind === 'share' ? `share:${g.jti}` : g.sub, role: kind === 'share' ? 'share' : g.role, host: hostname }, ttl);
    return { status: 302, headers: { location: `${url.pathname}${url.search}`, 'set-cookie': sessionCookie(session.token, ttl), 'cache-control': 'no-store' }, body: '' };
  }

  /** The forward-auth decision for one proxied request (its Host, its URI, its credentials). */
  async function authorize(req: IncomingMessage): Promise<Answer> {
    const h = req.headers;
    const accept = String(h.accept ?? '');
    const browser = /text\/html/.test(accept) && !h.authorization;
    // The proxy passes the user's Host through unchanged.
    const host = String(h.host ?? '');
    const target = parseWorkspaceHost(host, domain);
    if (!target) return reply(404, browser, 'not_found', 'no such workspace');
    const hostname = host.toLowerCase().replace(/:\d+$/, '');
    const uri = String(h['x-forwarded-uri'] ?? '/');
    let url: URL;
    try {
      url = new URL(uri.startsWith('/') ? uri : '/', `${base.protocol}//${host}`);
    } catch {
      // The user's own URI (e.g. `//[`): their mistake, not an outage of ours.
      return reply(400, browser, 'bad_request', 'the request URI is not valid');
    }
    if (url.searchParams.has(TICKET_PARAM) || url.searchParams.has(SHARE_PARAM)) return exchange(url, hostname, browser);

    let who: { sub: string; role: string } | null = null;
    const bearer = /^Bearer\s+(.+)$/i.exec(String(h.authorization ?? ''));
    if (bearer) {
      const token = bearer[1];
      let p = recall(token);
      if (!p) {
        const v = await verifyBearer(token);
        if (v) {
          p = { sub: v.id, role: v.role, exp: v.exp ?? 0 };
          remember(token, p);
        }
      }
      if (!p) return reply(401, false, 'unauthorized', 'invalid or expired token', { 'www-authenticate': 'Bearer realm="podex-workspace"' });
      who = { sub: p.sub, role: p.role };
    } else {
      const cookie = readCookie(h.cookie, SESSION_COOKIE);
      let s = cookie ? recall(cookie) : undefined;
      if (cookie && !s) {
        const v = await tokens.verify('session', cookie);
        if (v.ok) remember(cookie, (s = { sub: v.grant.sub, role: v.grant.role, host: v.grant.host, exp: v.grant.exp }));
      }
      if (s && s.host === hostname) who = { sub: s.sub, role: s.role };
    }
    if (!who) {
      if (browser) {
        const next = `${base.protocol}//${host}${url.pathname}${url.search}`;
        return { status: 302, headers: { location: `${deps.signInUrl}${deps.signInUrl.includes('?') ? '&' : '?'}next=${encodeURIComponent(next)}`, 'cache-control': 'no-store' }, body: '' };
      }
      return reply(401, false, 'unauthorized', 'sign in: send a Bearer token, or open the workspace through GET /workspaces/{id}/open', { 'www-authenticate': 'Bearer realm="podex-workspace"' });
    }

    const row = await routeOf(target.workspaceId);
    // Another user's workspace looks exactly like one that does not exist. A share session is bound to its host already.
    if (!row || (who.role === 'user' && row.ownerId !== who.sub)) return reply(404, browser, 'not_found', 'no such workspace');
    const decision = routeFor(row, target.port);
    if (decision.kind === 'proxy') {
      return { status: 204, headers: { [UPSTREAM_HEADER]: decision.upstream, [COOKIE_HEADER]: withoutCookie(h.cookie, SESSION_COOKIE) }, body: '' };
    }
    if (decision.kind === 'not-found') return reply(404, browser, 'not_found', decision.message);
    return reply(503, browser, decision.state, decision.message, {
      'x-podex-workspace-state': decision.state,
      ...(decision.retryAfterSeconds ? { 'retry-after': String(decision.retryAfterSeconds) } : {}),
    });
  }

  async function answer(req: IncomingMessage): Promise<Answer> {
    try {
      return await authorize(req);
    } catch (err) {
      // The registry or Redis is down: the user is told to retry, never let through.
      log.error({ err: (err as Error).message }, 'forward auth failed');
      return reply(503, false, 'unavailable', 'the workspace cannot be reached right now; try again', { 'retry-after': '5' });
    }
  }

  /**
   * `GET /proxy/auth`, asked once per proxied request: the API's server hands it here before
   * Express (no middleware, no rate limit: the proxy is the only caller and every user request
   * is one question).
   */
  function handle(req: IncomingMessage, res: ServerResponse): void {
    void answer(req).then((a) => {
      res.writeHead(a.status, { ...a.headers, 'content-length': Buffer.byteLength(a.body) });
      res.end(a.body);
    });
  }

  /**
   * The proxy asks about WebSocket requests with their Upgrade headers still on: Node hands
   * those to the server's upgrade listener, which answers here with a plain response.
   */
  function onUpgrade(req: IncomingMessage, socket: Duplex): void {
    void answer(req).then((a) => socket.end(rawAnswer(a.status, a.headers, a.body)));
  }

  /** Behind the API's authentication: the hand-off to a workspace host, share links, the route document. */
  const router = Router();

  async function ownWorkspace(res: Parameters<typeof principal>[0], id: string) {
    const p = principal(res);
    const w = await deps.prisma.workspace.findUnique({ where: { id }, select: { id: true, ownerId: true, previewPorts: true, status: true } });
    if (!w || w.status === 'deleted' || (p.role !== 'admin' && w.ownerId !== p.id)) throw notFound('workspace');
    return w;
  }

  router.get(
    '/workspaces/:id/open',
    route(async (req, res) => {
      const { id } = parse(uuidParam, req.params, 'params');
      const q = parse(openWorkspaceQuery, req.query, 'query');
      const w = await ownWorkspace(res, id);
      if (q.port !== undefined && !w.previewPorts.includes(q.port)) throw new HttpError(400, 'bad_request', `port: ${q.port} is not a preview port of this workspace`, { field: 'port' });
      const p = principal(res);
      const t = await tokens.mint('ticket', { sub: p.id, role: p.role, host: workspaceHostname(id, domain, q.port) }, TICKET_TTL_SECONDS);
      const url = `${workspaceUrl(deps.baseUrl, id, q.port)}?${TICKET_PARAM}=${t.token}`;
      if (req.accepts(['text/html', 'application/json']) === 'application/json' && !req.accepts('text/html')) {
        res.json({ url, expiresAt: new Date(t.exp * 1000).toISOString() });
        return;
      }
      res.redirect(302, url);
    }),
  );

  router.post(
    '/workspaces/:id/share',
    route(async (req, res) => {
      const { id } = parse(uuidParam, req.params, 'params');
      const body = parse(shareWorkspaceBody, req.body ?? {});
      const w = await ownWorkspace(res, id);
      if (!w.previewPorts.includes(body.port)) throw new HttpError(400, 'bad_request', `port: ${body.port} is not a preview port of this workspace`, { field: 'port' });
      const p = principal(res);
      const t = await tokens.mint('share', { sub: p.id, role: 'share', host: workspaceHostname(id, domain, body.port) }, body.expiresInMinutes * 60);
      await deps.prisma.auditLog.create({ data: { actor: p.id, action: 'workspace.share', targetType: 'workspace', targetId: id, after: { port: body.port, shareId: t.jti, expiresAt: new Date(t.exp * 1000).toISOString() } } });
      res.status(201).json({ url: `${workspaceUrl(deps.baseUrl, id, body.port)}?${SHARE_PARAM}=${t.token}`, port: body.port, expiresAt: new Date(t.exp * 1000).toISOString() });
    }),
  );

  /**
   * Every routable workspace as a Traefik dynamic-configuration document (what its HTTP
   * provider polls), for a proxy that takes routes rather than asking per request.
   */
  router.get(
    '/proxy/routes',
    requireAdmin,
    route(async (req, res) => {
      await deps.routes.start();
      const routers: Record<string, unknown> = {};
      const services: Record<string, unknown> = {};
      const add = (name: string, host: string, upstream: string) => {
        routers[name] = { rule: `Host(\`${host}\`)`, service: name, middlewares: ['podex-auth'] };
        services[name] = { loadBalancer: { servers: [{ url: `http://${upstream}` }] } };
      };
      for (const r of deps.routes.all()) {
        for (const port of [null, ...r.previewPorts]) {
          const d = routeFor(r, port);
          if (d.kind === 'proxy') add(`${port ? `${port}-` : ''}ws-${r.id}`, workspaceHostname(r.id, domain, port), d.upstream);
        }
      }
      // Traefik asks the same forward-auth endpoint (it cannot rename a header, so the cookie stays as sent).
      const middlewares = { 'podex-auth': { forwardAuth: { address: `${req.protocol}://${req.get('host')}/proxy/auth`, trustForwardHeader: false } } };
      res.json({ http: { routers, services, middlewares } });
    }),
  );

  return { authorize: answer, handle, onUpgrade, router };
}
