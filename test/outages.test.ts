import { Client, Connection } from '@temporalio/client';
import { Redis } from 'ioredis';
import { mintToken } from '../api/auth';
import { config } from '../lib/config';
import { createPrisma, type PrismaClient } from '../lib/prisma';
import { eventually } from './harness';
import { uniq } from './helpers';
import { startPrivateApi, startPrivateStack, type PrivateApi, type PrivateStack } from './private-stack';

/**
 * Outages of PostgreSQL, Redis and Temporal, on a private stack (never the shared one): the
 * API answers 503 fast or degrades, never hangs, leaves no row half-made, and recovers.
 * Times are printed, not asserted: a request only has to finish before the client gives up.
 */
const CLIENT_DEADLINE_MS = 10_000;
const USER = 'outage-user';

let stack: PrivateStack;
let api: PrivateApi;
let prisma: PrismaClient;
let adminToken: string;
let userToken: string;

beforeAll(async () => {
  stack = await startPrivateStack();
  api = await startPrivateApi(stack);
  prisma = createPrisma(stack.databaseUrl, 2);
  adminToken = await mintToken(config().JWT_SECRET_KEY, 'outage-admin', 'admin');
  userToken = await mintToken(config().JWT_SECRET_KEY, USER, 'user');
  const grant = { plan: 'team', maxWorkspaces: 100, serverChoice: true, updatedBy: 'outages-test' };
  await prisma.userLimits.upsert({ where: { userId: USER }, create: { userId: USER, ...grant }, update: grant });
}, 180_000);

afterAll(async () => {
  await api?.close();
  await prisma?.$disconnect();
  await stack?.close();
});

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Answer = { status: number; body: any; headers: Headers; ms: number };

/** One request with the client's own deadline; prints how long the answer took. */
async function call(method: string, path: string, opts: { token?: string; body?: unknown; headers?: Record<string, string>; label?: string } = {}): Promise<Answer> {
  const t0 = performance.now();
  const res = await fetch(`${api.url}${path}`, {
    method,
    headers: {
      authorization: `Bearer ${opts.token ?? adminToken}`,
      ...(opts.body !== undefined ? { 'content-type': 'application/json' } : {}),
      ...opts.headers,
    },
    body: opts.body === undefined ? undefined : JSON.stringify(opts.body),
    signal: AbortSignal.timeout(CLIENT_DEADLINE_MS),
  });
  const text = await res.text();
  const ms = Math.round(performance.now() - t0);
  if (opts.label) console.log(`${opts.label}: ${res.status} in ${ms} ms`);
  let body: unknown = text;
  try {
    body = text ? JSON.parse(text) : undefined;
  } catch {
    // not JSON (metrics)
  }
  return { status: res.status, body, headers: res.headers, ms };
}

/** The API's pino lines whose message is `msg`. */
function logLines(msg: string): Record<string, unknown>[] {
  return api
    .logs()
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as Record<string, unknown>)
    .filter((l) => l.msg === msg);
}

async function metric(name: string): Promise<number> {
  const r = await call('GET', '/metrics');
  expect(r.status).toBe(200);
  // Summed over the metric's labels.
  const lines = (r.body as string).split('\n').filter((l) => l.startsWith(`${name} `) || l.startsWith(`${name}{`));
  return lines.reduce((n, l) => n + Number(l.slice(l.lastIndexOf(' ') + 1)), 0);
}

/** A workspace row of the test user's, as a finished provisioning leaves it (no workflow needed to read its events). */
function seedWorkspace(name: string) {
  return prisma.workspace.create({ data: { ownerId: USER, name, tier: 'free', strategy: 'SPREAD', status: 'running', previewPorts: [] } });
}

/** Reads an SSE stream's `data:` lines as they come. */
function sse(res: Response) {
  const reader = res.body!.getReader();
  const seen: string[] = [];
  let buf = '';
  const pump = (async () => {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buf += Buffer.from(value).toString('utf8');
      let i;
      while ((i = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 1);
        if (line.startsWith('data: ')) seen.push(line.slice(6));
      }
    }
  })().catch(() => undefined);
  return { seen, close: () => reader.cancel().catch(() => undefined).then(() => pump) };
}

/** Publishes a status event for `id` every 200 ms until the stream has shown it. */
async function publishUntilSeen(stream: { seen: string[] }, id: string, status: string): Promise<void> {
  const pub = new Redis(stack.redisUrl, { maxRetriesPerRequest: 1 });
  try {
    await eventually(async () => {
      await pub.publish(`podex:events:workspace:${id}`, JSON.stringify({ workspaceId: id, status, reason: null, at: new Date().toISOString() })).catch(() => 0);
      return stream.seen.some((d) => (JSON.parse(d) as { status: string }).status === status);
    }, 20_000);
  } finally {
    pub.disconnect();
  }
}

describe('Redis', () => {
  // First in the file: the API's event subscriber is made by the first stream, here while Redis is down.
  test('an event stream asked for while Redis is down is a 503 at once; once Redis is back a stream gets events', async () => {
    const ws = await seedWorkspace('sse-outage');
    await stack.redis.stop();
    try {
      const r = await call('GET', `/workspaces/${ws.id}/events`, { token: userToken, label: 'SSE with Redis stopped' });
      expect(r.status).toBe(503);
      expect(r.body).toMatchObject({ error: 'unavailable' });
      expect(r.headers.get('retry-after')).toBeTruthy();
    } finally {
      await stack.redis.start();
    }
    const res = await eventually(async () => {
      const x = await fetch(`${api.url}/workspaces/${ws.id}/events`, { headers: { authorization: `Bearer ${adminToken}` }, signal: AbortSignal.timeout(60_000) });
      if (x.status === 200) return x;
      await x.body?.cancel();
      return null;
    }, 20_000);
    const stream = sse(res);
    try {
      await publishUntilSeen(stream, ws.id, 'stopped');
    } finally {
      await stream.close();
    }
  });

  test('an open event stream keeps delivering after Redis restarts', async () => {
    const ws = await seedWorkspace('sse-restart');
    const res = await fetch(`${api.url}/workspaces/${ws.id}/events`, { headers: { authorization: `Bearer ${adminToken}` }, signal: AbortSignal.timeout(60_000) });
    expect(res.status).toBe(200);
    const stream = sse(res);
    try {
      await eventually(async () => stream.seen.length > 0, 10_000);
      await stack.redis.stop();
      await stack.redis.start();
      await publishUntilSeen(stream, ws.id, 'stopped');
    } finally {
      await stream.close();
    }
  });

  test('Redis stopped or blackholed: requests still answer (the rate limiter fails open, counted once per request and logged sparingly)', async () => {
    const before = await metric('podex_rate_limit_fail_open_total');
    const warnedBefore = logLines('rate limiter unavailable').length;
    await stack.redis.stop();
    try {
      for (let i = 0; i < 5; i++) expect((await call('GET', '/workspaces', { token: userToken, label: `GET /workspaces, Redis stopped (${i})` })).status).toBe(200);
    } finally {
      await stack.redis.start();
    }
    // The API's connection is up again (its limits are counted) before Redis hangs: a connection that is up, to a server that does not answer.
    await eventually(async () => (await call('GET', '/workspaces', { token: userToken })).headers.get('ratelimit-remaining') !== null, 20_000);
    await stack.redis.pause();
    try {
      for (let i = 0; i < 5; i++) expect((await call('GET', '/workspaces', { token: userToken, label: `GET /workspaces, Redis paused (${i})` })).status).toBe(200);
    } finally {
      await stack.redis.resume();
    }
    // Each of the ten requests passed two limits (address, user) without a count.
    expect((await metric('podex_rate_limit_fail_open_total')) - before).toBeGreaterThanOrEqual(20);
    const warned = logLines('rate limiter unavailable').slice(warnedBefore);
    expect(warned.length).toBeGreaterThanOrEqual(1);
    // Not a line per request: at most one per outage state (stopped, paused) and window.
    expect(warned.length).toBeLessThanOrEqual(4);
  });
});

describe('PostgreSQL', () => {
  test('down: a request needing the database is a fast 503 with Retry-After, logged at warn without a stack, and /readyz says postgres; back: 200', async () => {
    const warnedBefore = logLines('database unavailable').length;
    await stack.postgres.stop();
    try {
      for (let i = 0; i < 3; i++) {
        const r = await call('GET', '/workspaces', { token: userToken, label: `GET /workspaces, PostgreSQL stopped (${i})` });
        expect(r.status).toBe(503);
        expect(r.body).toEqual({ error: 'unavailable', message: 'database unavailable' });
        expect(Number(r.headers.get('retry-after'))).toBeGreaterThan(0);
      }
      const w = await call('POST', '/servers', { body: { name: 'pg-down', hostname: `${uniq('pg-down')}.local`, ipAddress: '127.0.0.1', dockerPort: 23761 }, label: 'POST /servers, PostgreSQL stopped' });
      expect(w.status).toBe(503);
      const ready = await eventually(async () => {
        const x = await call('GET', '/readyz');
        return x.body.checks.postgres.ok === false ? x : null;
      }, 15_000);
      expect(ready.status).toBe(503);
      expect(ready.body.checks.redis.ok).toBe(true);
    } finally {
      await stack.postgres.start();
    }
    await eventually(async () => (await call('GET', '/workspaces', { token: userToken })).status === 200, 15_000);
    const warned = logLines('database unavailable').slice(warnedBefore);
    expect(warned.length).toBeGreaterThanOrEqual(1);
    expect(warned.length).toBeLessThan(4);
    for (const l of warned) {
      expect(l.level).toBe(40);
      expect(JSON.stringify(l)).not.toMatch(/"stack"|\n\s+at /);
    }
  });
});

describe('Temporal', () => {
  test('down: POST /workspaces, POST /servers and a lifecycle command are fast 503s and leave no row; back: the same Idempotency-Key creates the workspace', async () => {
    // A server in service, so placement has somewhere to put the workspace: only Temporal is missing.
    await prisma.workspaceServer.create({
      data: { name: 'outage', hostname: `${uniq('outage')}.local`, ipAddress: '127.0.0.1', dockerPort: 23761, status: 'active', totalCpu: 32, totalMemoryMb: 65536, totalDiskGb: 1000, lastHeartbeat: new Date() },
    });
    const running = await seedWorkspace('lifecycle');
    const name = uniq('t-down');
    const key = uniq('key');
    const hostname = `${uniq('onboard')}.local`;
    await stack.temporal!.stop();
    try {
      const w = await call('POST', '/workspaces', { token: userToken, body: { name, tier: 'free' }, headers: { 'idempotency-key': key }, label: 'POST /workspaces, Temporal stopped' });
      expect(w.status).toBe(503);
      expect(w.body).toMatchObject({ error: 'unavailable' });
      expect(Number(w.headers.get('retry-after'))).toBeGreaterThan(0);
      expect(await prisma.workspace.count({ where: { name } })).toBe(0);

      const s = await call('POST', '/servers', { body: { name: 'onboard', hostname, ipAddress: '127.0.0.1', dockerPort: 23761 }, label: 'POST /servers, Temporal stopped' });
      expect(s.status).toBe(503);
      expect(s.body).toMatchObject({ error: 'unavailable' });
      expect(await prisma.workspaceServer.count({ where: { hostname } })).toBe(0);

      const u = await call('POST', `/workspaces/${running.id}/stop`, { token: userToken, label: 'POST /workspaces/:id/stop, Temporal stopped' });
      expect(u.status).toBe(503);
    } finally {
      await stack.temporal!.start();
    }
    const again = await eventually(async () => {
      const x = await call('POST', '/workspaces', { token: userToken, body: { name, tier: 'free' }, headers: { 'idempotency-key': key }, label: 'POST /workspaces, Temporal back' });
      return x.status === 202 ? x : null;
    }, 30_000);
    const row = await prisma.workspace.findUnique({ where: { id: again.body.workspace.id } });
    expect(row).toMatchObject({ name, ownerId: USER });
    const s = await call('POST', '/servers', { body: { name: 'onboard', hostname, ipAddress: '127.0.0.1', dockerPort: 23761 }, label: 'POST /servers, Temporal back' });
    expect(s.status).toBe(202);

    // Both workflows are there, waiting on a task queue no worker polls.
    const connection = await Connection.connect({ address: stack.temporalAddress });
    try {
      const client = new Client({ connection });
      expect((await client.workflow.getHandle(again.body.workflowId).describe()).status.name).toBe('RUNNING');
      expect((await client.workflow.getHandle(s.body.onboarding.workflowId).describe()).status.name).toBe('RUNNING');
    } finally {
      await connection.close();
    }
  });
});
