import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import path from 'node:path';
import type { Duplex } from 'node:stream';
import express, { type Express, type NextFunction, type Request, type Response } from 'express';
import type { Client } from '@temporalio/client';
import type { PrismaClient } from '../lib/prisma';
import type { Redis } from '../lib/redis';
import type { DockerFleet } from '../lib/docker-fleet';
import type { Logger } from '../lib/logger';
import type { Config } from '../domain/config';
import { authenticator, requireAdmin } from './auth';
import { ADMIN_AUTH_PATH, createAdminAuth } from './admin-auth';
import { clientErrorOf, HttpError, rawErrorAnswer } from './errors';
import { jsonBody } from './body';
import { allowedMethods } from './methods';
import { openApiDocument } from './openapi';
import { addressLimiter, principalLimiter, type RateLimits } from './rate-limit';
import { clientAddress, TrustedProxies } from './client-ip';
import { cors } from './cors';
import { adminHeaders } from './admin-headers';
import { cachedReadiness } from './readiness';
import { unavailableErrors } from './unavailable';
import { auditRouter } from './routes/audit';
import { serversRouter } from './routes/servers';
import { workspacesRouter } from './routes/workspaces';
import { userLimitsRouter } from './routes/user-limits';
import type { PlanName } from '../domain/quotas';
import { workspaceShell } from './routes/workspace-shell';
import { backupsRouter } from './routes/backups';
import { cutoversRouter } from './routes/cutovers';
import { llmRouter, openAiErrorBody } from './routes/llm';
import { codecCors, codecRouter } from './routes/temporal-codec';
import { LlmRouter, llmSettings, type LlmSettings } from '../lib/llm';
import { metricsExposition, observeRequest } from './metrics';
import { Restic, resticFromConfig, type ResticSettings } from '../lib/restic';
import { WorkspaceEvents } from './events';
import { RouteTable } from '../lib/route-table';
import { createWorkspaceAccess } from './workspace-access';

/** A WebSocket (or other upgrade) endpoint: the first whose path matches takes the socket. */
export interface UpgradeRoute {
  match: (pathname: string) => boolean;
  handle: (req: IncomingMessage, socket: Duplex, head: Buffer) => void;
}

/**
 * The API's HTTP server: the Workspace Proxy's per-request question goes straight to its
 * handler (before Express), everything else to the app; upgrades to the app's upgrade routes.
 */
export function createApiServer(app: Express): Server {
  const forwardAuth = app.locals.forwardAuth as (req: IncomingMessage, res: ServerResponse) => void;
  const adminAuth = app.locals.adminAuth as (req: IncomingMessage, res: ServerResponse) => void;
  const server = createServer((req, res) => {
    const url = req.url ?? '';
    if (req.method === 'GET' && (url === '/proxy/auth' || url.startsWith('/proxy/auth?'))) return forwardAuth(req, res);
    if (req.method === 'GET' && (url === ADMIN_AUTH_PATH || url.startsWith(`${ADMIN_AUTH_PATH}?`))) return adminAuth(req, res);
    app(req, res);
  });
  attachUpgrades(server, app);
  // A request Node cannot parse (bad syntax, headers over the limit) never reaches the app: its answer is written here.
  server.on('clientError', (err: NodeJS.ErrnoException, socket: Duplex) => {
    if (err.code === 'ECONNRESET' || !socket.writable) return void socket.destroy();
    const [status, error, message] =
      err.code === 'HPE_HEADER_OVERFLOW'
        ? [431, 'headers_too_large', 'request headers are larger than the server accepts']
        : err.code === 'ERR_HTTP_REQUEST_TIMEOUT'
          ? [408, 'request_timeout', 'the request did not arrive in time']
          : [400, 'bad_request', 'malformed HTTP request'];
    socket.end(rawErrorAnswer(status, error, message));
  });
  return server;
}

/** Hands a server's upgrade requests to the app's upgrade routes (the API process and tests call this once per server). */
export function attachUpgrades(server: Server, app: Express): void {
  const routes = app.locals.upgrades as UpgradeRoute[];
  server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    const pathname = new URL(req.url ?? '/', 'http://localhost').pathname;
    const r = routes.find((u) => u.match(pathname));
    if (r) return r.handle(req, socket, head);
    socket.end(rawErrorAnswer(404, 'not_found', `no WebSocket endpoint at ${pathname}`));
  });
}

export interface ApiSettings {
  jwtSecret: string;
  internalApiKey: string;
  /** Requests per minute per client address (RATE_LIMIT_PER_MINUTE). */
  rateLimitPerMinute: number;
  rateLimitPerPrincipal: number;
  rateLimitInternal: number;
  /** The window the limits above are counted over, in seconds (default 60; tests shorten it to stand for a long run). */
  rateLimitWindowSeconds?: number;
  /** Proxies whose forwarding headers name the client (TRUSTED_PROXIES). */
  trustedProxies: string[];
  corsOrigins: string[];
  sseMaxPerUser: number;
  /** How long a readiness answer is reused (ms). */
  readyzCacheMs: number;
  taskQueue: string;
  namespace: string;
  temporalUiUrl: string;
  workspaceImage: string;
  strictAudit: boolean;
  overcommit: number;
  /** How long the user-facing server list may be reused (ms). */
  availableCacheMs: number;
  migrationMaxParallel: number;
  migrationHoldHealthyMs: number;
  /** The restic repository backups go to (the password stays in its file). */
  restic: ResticSettings;
  llm: LlmSettings;
  /** Where users open workspaces (`ws-{id}.` + its host). */
  workspaceBaseUrl: string;
  workspaceSignInUrl: string;
  workspaceSessionMinutes: number;
  /** The plan of a user without an admin's override (quotas). */
  defaultPlan: PlanName;
}

export function apiSettings(c: Config): ApiSettings {
  return {
    jwtSecret: c.JWT_SECRET_KEY,
    internalApiKey: c.INTERNAL_API_KEY,
    rateLimitPerMinute: c.RATE_LIMIT_PER_MINUTE,
    rateLimitPerPrincipal: c.RATE_LIMIT_PER_USER_PER_MINUTE,
    rateLimitInternal: c.RATE_LIMIT_INTERNAL_PER_MINUTE,
    trustedProxies: c.TRUSTED_PROXIES,
    corsOrigins: c.CORS_ORIGINS,
    sseMaxPerUser: c.SSE_MAX_PER_USER,
    readyzCacheMs: 5_000,
    taskQueue: c.TEMPORAL_TASK_QUEUE,
    namespace: c.TEMPORAL_NAMESPACE,
    temporalUiUrl: c.TEMPORAL_UI_URL,
    workspaceImage: c.WORKSPACE_IMAGE,
    strictAudit: c.STRICT_DAEMON_AUDIT,
    overcommit: c.OVERCOMMIT_RATIO,
    availableCacheMs: 1_000,
    migrationMaxParallel: c.MIGRATION_MAX_PARALLEL,
    migrationHoldHealthyMs: c.MIGRATION_HOLD_HEALTHY_SECONDS * 1000,
    restic: resticFromConfig(c).settings,
    llm: llmSettings(c),
    workspaceBaseUrl: c.WORKSPACE_BASE_URL,
    workspaceSignInUrl: c.WORKSPACE_SIGN_IN_URL,
    workspaceSessionMinutes: c.WORKSPACE_SESSION_MINUTES,
    defaultPlan: c.DEFAULT_USER_PLAN,
  };
}

export interface ApiDeps {
  /** The fleet's Docker engines (mutual TLS): exec and terminals in workspaces. */
  fleet: DockerFleet;
  prisma: PrismaClient;
  redis: Redis;
  temporal: Client;
  logger: Logger;
  settings: ApiSettings;
}

/** Builds the Express app from the process's long-lived clients (tests pass the same clients). */
export function createApp(deps: ApiDeps): Express {
  const app = express();
  const log = deps.logger.child({ component: 'api' });
  app.disable('x-powered-by');
  const trusted = new TrustedProxies(deps.settings.trustedProxies);
  app.set('trust proxy', (addr: string) => trusted.trusts(addr));
  app.use((_req, res, next) => {
    res.setHeader('X-Content-Type-Options', 'nosniff');
    next();
  });
  app.use((req: Request, res: Response, next: NextFunction) => {
    const t0 = process.hrtime.bigint();
    res.on('finish', () => {
      const ms = Number(process.hrtime.bigint() - t0) / 1e6;
      observeRequest(req, res.statusCode, ms / 1000);
      log.debug({ method: req.method, path: req.path, status: res.statusCode, ms: Math.round(ms * 10) / 10 }, 'request');
    });
    next();
  });
  app.use('/codec', codecCors(deps.settings.temporalUiUrl));
  app.use(cors(deps.settings.corsOrigins));

  /** Liveness: the process is up and serving. */
  app.get('/healthz', (_req, res) => {
    res.json({ status: 'ok' });
  });

  /** Readiness: every dependency the API needs answers (asked once per readyzCacheMs, however often probed). */
  const readiness = cachedReadiness(
    {
      temporal: () => deps.temporal.workflowService.getSystemInfo({}),
      postgres: () => deps.prisma.$queryRaw`SELECT 1`,
      redis: () => deps.redis.ping(),
    },
    deps.settings.readyzCacheMs,
    log,
  );
  app.get('/readyz', async (_req, res) => {
    const { ready, checks } = await readiness();
    res.status(ready ? 200 : 503).json({ status: ready ? 'ready' : 'not ready', checks });
  });

  const openapi = openApiDocument();
  app.get('/openapi.json', (_req, res) => {
    res.json(openapi);
  });

  /** The fleet console: static files; every call it makes goes through the API with the operator's token. */
  app.use('/admin', adminHeaders, onlyGet, express.static(path.join(__dirname, '..', 'admin'), { index: 'index.html', fallthrough: false }));

  // The Workspace Proxy asks here once per request: before the API's own rate limit and authentication.
  const routes = new RouteTable(deps.prisma, deps.redis, log);
  const access = createWorkspaceAccess({
    prisma: deps.prisma,
    redis: deps.redis,
    routes,
    logger: deps.logger,
    jwtSecret: deps.settings.jwtSecret,
    baseUrl: deps.settings.workspaceBaseUrl,
    signInUrl: deps.settings.workspaceSignInUrl,
    sessionMinutes: deps.settings.workspaceSessionMinutes,
  });
  routes.start().catch((err: Error) => log.error({ err: err.message }, 'route table did not load; it loads on the first proxied request'));
  app.locals.forwardAuth = access.handle;
  // The Temporal UI's gate (deploy/proxy/temporal-ui.caddy): admins only, before the rate limit as the UI polls.
  app.locals.adminAuth = createAdminAuth({ jwtSecret: deps.settings.jwtSecret, logger: deps.logger });
  const upgrades: UpgradeRoute[] = [{ match: (p) => p === '/proxy/auth', handle: (req, socket) => access.onUpgrade(req, socket) }];
  app.locals.upgrades = upgrades;
  app.locals.routes = routes;

  // Limits, then who is asking, then their limit, and only then is a body read.
  const limits: RateLimits = { perIp: deps.settings.rateLimitPerMinute, perPrincipal: deps.settings.rateLimitPerPrincipal, internal: deps.settings.rateLimitInternal, windowSeconds: deps.settings.rateLimitWindowSeconds };
  const limiterDown = (err: Error) => log.warn({ err: err.message }, 'rate limiter unavailable');
  app.use(addressLimiter(deps.redis, limits, deps.settings.internalApiKey, (req) => clientAddress(req, trusted), limiterDown));
  app.use(authenticator(deps.settings.jwtSecret, deps.settings.internalApiKey));
  app.use(principalLimiter(deps.redis, limits, limiterDown));
  app.use(jsonBody());

  /** Prometheus metrics for admins (Prometheus itself scrapes METRICS_ADDRESS): aggregate counts only, nothing per user or secret. */
  app.get('/metrics', requireAdmin, async (_req, res, next) => {
    try {
      res.type('text/plain; version=0.0.4').send(await metricsExposition(deps.prisma));
    } catch (err) {
      next(err);
    }
  });
  app.use(serversRouter(deps));
  app.use(auditRouter(deps));
  const events = new WorkspaceEvents(deps.redis);
  app.locals.events = events;
  app.locals.close = () => Promise.all([events.close(), routes.close()]);
  app.use(workspacesRouter({ ...deps, events }));
  app.use(userLimitsRouter(deps));
  const shell = workspaceShell(deps);
  upgrades.push(shell.upgrade);
  app.use(shell.router);
  app.use(access.router);
  app.use(backupsRouter({ ...deps, restic: new Restic(deps.settings.restic) }));
  app.use(cutoversRouter(deps));
  app.use(llmRouter({ ...deps, llm: new LlmRouter(deps.prisma, deps.settings.llm, deps.logger) }));
  app.use(codecRouter(deps));

  // No route took it: a path we serve with other methods is a 405 naming them, anything else a 404.
  app.use((req, _res, next) => {
    const allow = allowedMethods(app.router, req.path);
    if (allow.length) return next(new HttpError(405, 'method_not_allowed', `${req.method} is not allowed on ${req.path}: use ${allow.join(', ')}`, undefined, { Allow: allow.join(', ') }));
    next(new HttpError(404, 'not_found', `no such route: ${req.method} ${req.path}`));
  });
  // A dependency out of reach is a 503 the client may retry, not our fault.
  app.use(unavailableErrors(log));
  // Express 5 routes rejected promises here; never leak internals to the caller.
  app.use((err: unknown, req: Request, res: Response, next: NextFunction) => {
    if (res.headersSent) return next(err);
    const e = clientErrorOf(err, req);
    if (e && e.status < 500) log.debug({ method: req.method, path: req.path, status: e.status, error: e.code }, 'client error');
    else if (!e) log.error({ err }, 'unhandled error');
    const answer = e ?? new HttpError(500, 'internal', 'internal error');
    if (answer.headers) res.set(answer.headers);
    // The OpenAI-compatible routes (and the credit top-up beside them) answer in OpenAI's error shape, whoever raised the error.
    if (req.path === '/v1' || req.path.startsWith('/v1/') || req.path.startsWith('/credits/')) return void res.status(answer.status).json(openAiErrorBody(answer.code, answer.message));
    res.status(answer.status).json({ error: answer.code, message: answer.message, ...(answer.details ? { details: answer.details } : {}) });
  });
  return app;
}

/** The fleet console is files: reading them is all a client can do (serve-static's own 405 has no body). */
function onlyGet(req: Request, _res: Response, next: NextFunction): void {
  if (req.method === 'GET' || req.method === 'HEAD') return next();
  next(new HttpError(405, 'method_not_allowed', `${req.method} is not allowed on /admin: use GET, HEAD`, undefined, { Allow: 'GET, HEAD' }));
}
