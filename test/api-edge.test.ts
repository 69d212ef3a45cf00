import { spawn } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import net, { type AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { Client, Connection } from '@temporalio/client';
import { SignJWT } from 'jose';
import YAML from 'yaml';
import { config } from '../lib/config';
import { createLogger } from '../lib/logger';
import { createPrisma, type PrismaClient } from '../lib/prisma';
import { createRedis } from '../lib/redis';
import { Restic } from '../lib/restic';
import { temporalConnectionOptions, temporalDataConverter } from '../lib/temporal';
import { snapshotTags } from '../domain/backup';
import { apiSettings, createApiServer, createApp, type ApiSettings } from '../api/app';
import { mintToken } from '../api/auth';
import type { WorkspaceEvents } from '../api/events';
import { testFleet, uniq } from './helpers';

/**
 * The API's edge: what a request meets before any route (rate limits, client address,
 * authentication, CORS, headers), the cheap probes, event streams and the backup list.
 */

interface Answer {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

/** A fresh loopback source address per test, so its rate-limit buckets are its own. */
const loopback = () => `127.${1 + Math.floor(Math.random() * 200)}.${Math.floor(Math.random() * 250)}.${1 + Math.floor(Math.random() * 250)}`;

function request(url: string, p: string, o: { method?: string; headers?: Record<string, string>; body?: string; from?: string } = {}): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = http.request(`${url}${p}`, { method: o.method ?? 'GET', headers: o.headers, localAddress: o.from, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body }));
    });
    req.on('error', reject);
    req.end(o.body);
  });
}

/** Fixed one-minute windows: a test that counts must not straddle a window's end. */
async function freshWindow(): Promise<void> {
  const into = Date.now() % 60_000;
  if (into > 52_000) await new Promise((r) => setTimeout(r, 60_050 - into));
}

describe('API edge', () => {
  const c = config();
  const prisma = createPrisma(c.DATABASE_URL, 4);
  const redis = createRedis(c.REDIS_URL);
  let connection: Connection;
  let temporal: Client;
  const closers: (() => Promise<void>)[] = [];

  beforeAll(async () => {
    connection = await Connection.connect(temporalConnectionOptions(c));
    temporal = new Client({ connection, namespace: c.TEMPORAL_NAMESPACE, dataConverter: temporalDataConverter(c) });
  });
  afterEach(async () => {
    for (const close of closers.splice(0).reverse()) await close();
  });
  afterAll(async () => {
    await Promise.allSettled([prisma.$disconnect(), redis.quit(), connection.close()]);
  });

  // Every test API here counts 127.0.0.1 in the stack's one Redis, with every other suite's API running at the same
  // time: only the tests of the limits themselves get small ones (a fresh-clone run saw GET /backups refused with 429).
  const unlimited = { rateLimitPerMinute: 100_000, rateLimitPerPrincipal: 100_000, rateLimitInternal: 100_000 };
  async function serve(settings: Partial<ApiSettings> = {}, db: PrismaClient = prisma) {
    const app = createApp({ fleet: testFleet(), prisma: db, redis, temporal, logger: createLogger('silent'), settings: { ...apiSettings(c), ...unlimited, ...settings } });
    const server = createApiServer(app).listen(0, '127.0.0.1');
    await new Promise((r) => server.once('listening', r));
    closers.push(async () => {
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
      await (app.locals.close as () => Promise<void>)();
    });
    return { app, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}` };
  }
  const bearer = async (sub: string, role: 'admin' | 'user' = 'user') => ({ authorization: `Bearer ${await mintToken(c.JWT_SECRET_KEY, sub, role)}` });

  describe('rate limits (finding 8)', () => {
    it('ignores X-Forwarded-For and CF-Connecting-IP from an untrusted peer, and honours them from a trusted proxy', async () => {
      const proxy = loopback();
      const { url } = await serve({ rateLimitPerMinute: 3, rateLimitPerPrincipal: 100_000, trustedProxies: [proxy] });
      const auth = await bearer(uniq('rl-spoof'));
      await freshWindow();
      // An untrusted client invents a new address on every request: still one client.
      const spoofed: number[] = [];
      const from = loopback();
      for (let i = 0; i < 5; i++) {
        const headers = { ...auth, 'x-forwarded-for': loopback(), 'cf-connecting-ip': loopback() };
        spoofed.push((await request(url, '/servers/available', { headers, from })).status);
      }
      expect(spoofed).toEqual([200, 200, 200, 429, 429]);
      // Through the trusted proxy each client is counted on its own...
      const viaProxy: number[] = [];
      for (let i = 0; i < 5; i++) viaProxy.push((await request(url, '/servers/available', { headers: { ...auth, 'x-forwarded-for': `203.0.113.${i + 1}` }, from: proxy })).status);
      expect(viaProxy).toEqual([200, 200, 200, 200, 200]);
      // ...Cloudflare's header first; and the same client through the proxy is limited like any other.
      const cf: number[] = [];
      for (let i = 0; i < 4; i++) cf.push((await request(url, '/servers/available', { headers: { ...auth, 'cf-connecting-ip': '198.51.100.7', 'x-forwarded-for': `203.0.113.${50 + i}` }, from: proxy })).status);
      expect(cf).toEqual([200, 200, 200, 429]);
    });

    it('limits one user across addresses, apart from the per-address limit', async () => {
      const { url } = await serve({ rateLimitPerMinute: 100_000, rateLimitPerPrincipal: 3 });
      const alice = await bearer(uniq('rl-alice'));
      await freshWindow();
      const codes: number[] = [];
      for (let i = 0; i < 5; i++) codes.push((await request(url, '/servers/available', { headers: alice, from: loopback() })).status);
      expect(codes).toEqual([200, 200, 200, 429, 429]);
      // Another user from the same kind of addresses is not affected.
      expect((await request(url, '/servers/available', { headers: await bearer(uniq('rl-bob')), from: loopback() })).status).toBe(200);
    });

    it('gives the internal API key its own, larger budget (a wrong key counts against the address)', async () => {
      const { url } = await serve({ rateLimitPerMinute: 2, rateLimitPerPrincipal: 2, rateLimitInternal: 6 });
      const from = loopback();
      await freshWindow();
      const codes: number[] = [];
      for (let i = 0; i < 7; i++) codes.push((await request(url, '/servers', { headers: { 'x-internal-api-key': c.INTERNAL_API_KEY }, from })).status);
      expect(codes).toEqual([200, 200, 200, 200, 200, 200, 429]);
      const wrong: number[] = [];
      const other = loopback();
      for (let i = 0; i < 3; i++) wrong.push((await request(url, '/servers', { headers: { 'x-internal-api-key': 'x'.repeat(c.INTERNAL_API_KEY.length) }, from: other })).status);
      expect(wrong).toEqual([401, 401, 429]);
    });

    it('refuses a client over its limit before reading its body: 429 to a 1 MB upload never sent', async () => {
      const { url } = await serve({ rateLimitPerMinute: 2, rateLimitPerPrincipal: 100_000 });
      const auth = await bearer(uniq('rl-body'));
      const from = loopback();
      await freshWindow();
      // Within the limit a body is read and parsed (malformed JSON: 400).
      for (let i = 0; i < 2; i++) {
        const r = await request(url, '/workspaces', { method: 'POST', headers: { ...auth, 'content-type': 'application/json' }, body: '{bad', from });
        expect(r.status).toBe(400);
      }
      // Over it, 20 uploads announce 1 MB each and send none of it: each is answered at once.
      const t0 = Date.now();
      const answers = await Promise.all(
        Array.from(
          { length: 20 },
          () =>
            new Promise<Answer>((resolve, reject) => {
              const req = http.request(`${url}/workspaces`, { method: 'POST', localAddress: from, agent: false, headers: { ...auth, 'content-type': 'application/json', 'content-length': String(1_000_000) } }, (res) => {
                let body = '';
                res.on('data', (d: Buffer) => (body += d.toString()));
                res.on('end', () => {
                  resolve({ status: res.statusCode!, headers: res.headers, body });
                  req.destroy();
                });
              });
              req.on('error', reject);
              req.flushHeaders();
              setTimeout(() => reject(new Error('no answer: the API is waiting for the body')), 3_000).unref();
            }),
        ),
      );
      expect(answers.map((a) => a.status)).toEqual(Array(20).fill(429));
      expect(answers[0].headers.connection).toBe('close');
      expect(Date.now() - t0).toBeLessThan(3_000);
    });
  });

  it('/metrics needs an admin on the API port (finding 8)', async () => {
    const { url } = await serve();
    expect((await request(url, '/metrics')).status).toBe(401);
    expect((await request(url, '/metrics', { headers: await bearer(uniq('m-user')) })).status).toBe(403);
    const ok = await request(url, '/metrics', { headers: await bearer(uniq('m-admin'), 'admin') });
    expect(ok.status).toBe(200);
    expect(ok.body).toContain('podex_workspaces{status="running"}');
  });

  it('/readyz asks its dependencies once per window however often it is probed (finding 8)', async () => {
    let selects = 0;
    const counting = new Proxy(prisma, {
      get(target, prop) {
        const v = Reflect.get(target, prop, target) as unknown;
        if (prop === '$queryRaw') {
          return (strings: TemplateStringsArray, ...values: unknown[]) => {
            if (strings.join('?').trim() === 'SELECT 1') selects++;
            return target.$queryRaw(strings, ...values);
          };
        }
        return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
      },
    });
    const { url } = await serve({ readyzCacheMs: 1_000 }, counting);
    const burst = await Promise.all(Array.from({ length: 30 }, () => request(url, '/readyz')));
    for (let i = 0; i < 10; i++) burst.push(await request(url, '/readyz'));
    expect(burst.every((r) => r.status === 200 && JSON.parse(r.body).status === 'ready')).toBe(true);
    expect(selects).toBe(1);
    await new Promise((r) => setTimeout(r, 1_100));
    expect((await request(url, '/readyz')).status).toBe(200);
    expect(selects).toBe(2);
  });

  it('the API listens on API_HOST (loopback by default), and Prometheus scrapes METRICS_ADDRESS without credentials (findings 14, 8)', async () => {
    const free = async () => {
      const s = net.createServer().listen(0, '127.0.0.1');
      await new Promise((r) => s.once('listening', r));
      const port = (s.address() as AddressInfo).port;
      await new Promise((r) => s.close(r));
      return port;
    };
    const [port, metricsPort] = [await free(), await free()];
    const env: NodeJS.ProcessEnv = { ...process.env, PORT: String(port), METRICS_ADDRESS: `127.0.0.1:${metricsPort}`, ENSURE_SCHEDULES: 'false', LOG_LEVEL: 'warn' };
    delete env.API_HOST;
    const child = spawn(path.join(__dirname, '..', 'node_modules', '.bin', 'tsx'), [path.join(__dirname, '..', 'api', 'main.ts')], { env, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    const exited = new Promise((r) => child.once('exit', r));
    try {
      const deadline = Date.now() + 30_000;
      for (;;) {
        const up = await request(`http://127.0.0.1:${port}`, '/healthz').catch(() => undefined);
        if (up?.status === 200) break;
        if (Date.now() > deadline || child.exitCode !== null) throw new Error(`the API did not start: ${stderr}`);
        await new Promise((r) => setTimeout(r, 200));
      }
      // Another loopback address of this host (as a workspace bridge's gateway would be): nothing listens there.
      await expect(request(`http://127.0.0.2:${port}`, '/healthz')).rejects.toMatchObject({ code: 'ECONNREFUSED' });
      expect((await request(`http://127.0.0.1:${port}`, '/metrics')).status).toBe(401);
      const scraped = await request(`http://127.0.0.1:${metricsPort}`, '/metrics');
      expect(scraped.status).toBe(200);
      expect(scraped.body).toContain('podex_servers{status="active"}');
      expect((await request(`http://127.0.0.1:${metricsPort}`, '/servers')).status).toBe(404);
    } finally {
      child.kill('SIGTERM');
      await exited;
    }
  });

  it('the compose file binds the API in its container and Prometheus scrapes its unpublished METRICS_ADDRESS', () => {
    const root = path.join(__dirname, '..');
    const compose = YAML.parse(fs.readFileSync(path.join(root, 'deploy/coolify/docker-compose.yml'), 'utf8')) as {
      services: { api: { environment: Record<string, string>; ports: string[] } };
      'x-app-env': Record<string, string>;
    };
    const env = compose.services.api.environment;
    expect(env.API_HOST).toBe('0.0.0.0');
    const metricsPort = env.METRICS_ADDRESS.split(':').pop()!;
    expect(compose.services.api.ports.join(' ')).not.toContain(metricsPort);
    expect(compose['x-app-env'].TRUST_PROXY).toBeUndefined();
    const prometheus = YAML.parse(fs.readFileSync(path.join(root, 'deploy/monitoring/prometheus.yml'), 'utf8')) as { scrape_configs: { job_name: string; static_configs: { targets: string[] }[] }[] };
    const job = prometheus.scrape_configs.find((j) => j.job_name === 'podex-api')!;
    expect(job.static_configs[0].targets).toEqual([`api:${metricsPort}`]);
  });

  it('refuses a token without exp (401) and accepts the same token with one', async () => {
    const { url } = await serve();
    const key = new TextEncoder().encode(c.JWT_SECRET_KEY);
    const sign = (exp: boolean) => {
      const jwt = new SignJWT({ role: 'admin' }).setProtectedHeader({ alg: 'HS256' }).setSubject(uniq('noexp')).setIssuer('podex').setAudience('podex-orchestrator').setIssuedAt();
      return (exp ? jwt.setExpirationTime('5m') : jwt).sign(key);
    };
    const refused = await request(url, '/servers', { headers: { authorization: `Bearer ${await sign(false)}` } });
    expect(refused.status).toBe(401);
    expect(JSON.parse(refused.body).error).toBe('unauthorized');
    expect((await request(url, '/servers', { headers: { authorization: `Bearer ${await sign(true)}` } })).status).toBe(200);
  });

  it('caps event streams per user (429) and leaks no listener when a client leaves early', async () => {
    const { app, url } = await serve({ sseMaxPerUser: 2 });
    const events = app.locals.events as WorkspaceEvents;
    const owner = uniq('sse');
    const ws = await prisma.workspace.create({ data: { ownerId: owner, name: owner, tier: 'starter', status: 'stopped' } });
    closers.push(async () => void (await prisma.workspace.delete({ where: { id: ws.id } })));
    const auth = await bearer(owner);
    const base = events.listenerCount;

    const open = () =>
      new Promise<{ status: number; close: () => void }>((resolve, reject) => {
        const req = http.get(`${url}/workspaces/${ws.id}/events`, { headers: auth, agent: false }, (res) => {
          if (res.statusCode !== 200) {
            res.resume();
            return resolve({ status: res.statusCode!, close: () => req.destroy() });
          }
          res.once('data', () => resolve({ status: 200, close: () => req.destroy() }));
        });
        req.on('error', reject);
      });
    const until = async (what: () => boolean) => {
      for (let i = 0; i < 100 && !what(); i++) await new Promise((r) => setTimeout(r, 20));
      return what();
    };

    const a = await open();
    const b = await open();
    expect([a.status, b.status]).toEqual([200, 200]);
    const third = await open();
    expect(third.status).toBe(429);
    expect(events.listenerCount).toBe(base + 2);
    a.close();
    expect(await until(() => events.listenerCount === base + 1)).toBe(true);
    const c2 = await open();
    expect(c2.status).toBe(200);

    // Clients that send the request and reset the connection at once, at staggered moments
    // (while the server authenticates, reads the workspace, subscribes).
    const port = Number(new URL(url).port);
    const raw = `GET /workspaces/${ws.id}/events HTTP/1.1\r\nhost: 127.0.0.1\r\nauthorization: ${auth.authorization}\r\n\r\n`;
    await Promise.all(
      Array.from({ length: 30 }, (_, i) =>
        new Promise<void>((resolve) => {
          const s = net.connect(port, '127.0.0.1', () => {
            s.write(raw);
            setTimeout(() => {
              s.resetAndDestroy();
              resolve();
            }, i % 10);
          });
          s.on('error', () => undefined);
        }),
      ),
    );
    b.close();
    c2.close();
    expect(await until(() => events.listenerCount === base)).toBe(true);
    await new Promise((r) => setTimeout(r, 300));
    expect(events.listenerCount).toBe(base);
    // Every stream slot came back too.
    const again = [await open(), await open()];
    expect(again.map((s) => s.status)).toEqual([200, 200]);
    for (const s of again) s.close();
  });

  it('applies CORS_ORIGINS: allowed origins get CORS headers and preflights, others none', async () => {
    const { url } = await serve({ corsOrigins: ['https://app.example.test'] });
    const allowed = await request(url, '/healthz', { headers: { origin: 'https://app.example.test' } });
    expect(allowed.headers['access-control-allow-origin']).toBe('https://app.example.test');
    expect(allowed.headers.vary).toMatch(/Origin/i);
    const other = await request(url, '/healthz', { headers: { origin: 'https://evil.example.test' } });
    expect(other.headers['access-control-allow-origin']).toBeUndefined();

    const preflight = { 'access-control-request-method': 'POST', 'access-control-request-headers': 'authorization,content-type' };
    const pre = await request(url, '/workspaces', { method: 'OPTIONS', headers: { origin: 'https://app.example.test', ...preflight } });
    expect(pre.status).toBe(204);
    expect(pre.headers['access-control-allow-origin']).toBe('https://app.example.test');
    expect(pre.headers['access-control-allow-methods']).toContain('POST');
    expect(pre.headers['access-control-allow-headers']?.toLowerCase()).toContain('authorization');
    const bad = await request(url, '/workspaces', { method: 'OPTIONS', headers: { origin: 'https://evil.example.test', ...preflight } });
    expect(bad.headers['access-control-allow-origin']).toBeUndefined();
    expect(bad.headers['access-control-allow-methods']).toBeUndefined();
    // An error answer to an allowed origin is readable by its page too.
    const unauth = await request(url, '/servers', { headers: { origin: 'https://app.example.test' } });
    expect(unauth.status).toBe(401);
    expect(unauth.headers['access-control-allow-origin']).toBe('https://app.example.test');
  });

  it('/admin is sent with a strict CSP, nosniff and no framing', async () => {
    const { url } = await serve();
    for (const p of ['/admin/', '/admin/app.js']) {
      const r = await request(url, p);
      expect(r.status).toBe(200);
      const csp = String(r.headers['content-security-policy']);
      for (const d of ["default-src 'none'", "script-src 'self'", "style-src 'self'", "connect-src 'self'", "frame-ancestors 'none'", "base-uri 'none'"]) expect(csp).toContain(d);
      expect(csp).not.toContain('unsafe');
      expect(r.headers['x-content-type-options']).toBe('nosniff');
      expect(r.headers['x-frame-options']).toBe('DENY');
    }
  });

  it('GET /backups pages the snapshot list and reads the repository once per window', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'podex-list-'));
    closers.push(async () => fs.rmSync(dir, { recursive: true, force: true }));
    fs.writeFileSync(path.join(dir, 'password'), 'list-test-password');
    // restic itself, behind a script that counts how often the API starts it.
    const bin = path.join(dir, 'restic');
    fs.writeFileSync(bin, `#!/bin/sh\necho "$1" >> ${dir}/calls\nexec restic "$@"\n`, { mode: 0o755 });
    const settings = { repository: path.join(dir, 'repo'), passwordFile: path.join(dir, 'password'), bin };
    const restic = new Restic(settings);
    await restic.ensureRepository();
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) {
      const { Readable } = await import('node:stream');
      const tags = snapshotTags({ kind: i % 2 ? 'database' : 'workspace', run: `run-${i}`, ...(i % 2 ? { database: 'podex' } : { workspaceId: '00000000-0000-4000-8000-00000000000' + i }) });
      ids.push((await restic.backupStream(Readable.from([Buffer.from(`snapshot ${i}`)]), `f${i}`, tags, { time: `2026-01-0${i + 1} 00:00:00` })).snapshotId);
    }
    const calls = () => fs.readFileSync(path.join(dir, 'calls'), 'utf8').split('\n').filter((l) => l === 'snapshots').length;
    const before = calls();
    const { url } = await serve({ restic: settings });
    const admin = await bearer(uniq('lister'), 'admin');

    const seen: string[] = [];
    let cursor: string | null = null;
    const pages: number[] = [];
    do {
      const q: string = `/backups?limit=2&runs=0${cursor ? `&before=${encodeURIComponent(cursor)}` : ''}`;
      const r = await request(url, q, { headers: admin });
      expect(r.status).toBe(200);
      const body = JSON.parse(r.body) as { snapshots: { id: string; time: string }[]; nextCursor: string | null };
      pages.push(body.snapshots.length);
      seen.push(...body.snapshots.map((s) => s.id));
      cursor = body.nextCursor;
    } while (cursor);
    expect(pages).toEqual([2, 2, 1]);
    // Newest first, each once.
    expect(seen.map((id) => id.slice(0, 8))).toEqual(ids.map((id) => id.slice(0, 8)).reverse());
    const dbOnly = JSON.parse((await request(url, '/backups?kind=database&limit=1', { headers: admin })).body) as { snapshots: { id: string }[]; nextCursor: string | null };
    expect(dbOnly.snapshots.map((s) => s.id.slice(0, 8))).toEqual([ids[3].slice(0, 8)]);
    expect(dbOnly.nextCursor).not.toBeNull();
    // Four lists, one read of the repository.
    expect(calls() - before).toBe(1);

    const tooMany = await request(url, '/backups?limit=100000', { headers: admin });
    expect(tooMany.status).toBe(400);
    expect(tooMany.body).toContain('limit');
    const badCursor = await request(url, '/backups?before=nonsense', { headers: admin });
    expect(badCursor.status).toBe(400);
    expect(badCursor.body).toContain('before');
  });
});
