import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { apiSettings, createApiServer, createApp, type ApiSettings } from '../api/app';
import { mintToken } from '../api/auth';
import { config } from '../lib/config';
import type { ActivityDeps } from '../activities';
import { localEngines, terminateOpenWorkflows, uniq } from './helpers';
import { temporalForTest } from './temporal-env';

/**
 * The real API on a random loopback port, with a real worker polling the test's own task
 * queue: requests start real workflows on the stack's Temporal server.
 */
export async function startHarness(prefix: string, settings: Partial<ApiSettings> = {}, opts: { inProcessWorker?: boolean; overrides?: Partial<ActivityDeps> } = {}) {
  const c = config();
  const runWorker = opts.inProcessWorker ?? true;
  const t = await temporalForTest(prefix, opts.overrides ?? {}, runWorker);
  const app = createApp({
    fleet: t.deps.fleet,
    prisma: t.deps.prisma,
    redis: t.deps.redis,
    temporal: t.client,
    logger: opts.overrides?.logger ?? t.deps.logger,
    settings: { ...apiSettings(c), taskQueue: t.taskQueue, rateLimitPerMinute: 100_000, rateLimitPerPrincipal: 100_000, ...settings },
  });
  const server: Server = createApiServer(app).listen(0, '127.0.0.1');
  await new Promise((r) => server.once('listening', r));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const workerRun = runWorker ? t.worker.run() : Promise.resolve();
  const adminToken = await mintToken(c.JWT_SECRET_KEY, 'test-admin', 'admin');
  const userToken = await mintToken(c.JWT_SECRET_KEY, 'test-user', 'user');
  // The suites' users pin servers and run more workspaces than any plan allows: an admin's grant, as
  // an operator would give it (test/quotas.test.ts checks the plans themselves with users of its own).
  for (const userId of TEST_USERS) {
    const grant = { plan: 'team', maxWorkspaces: 1000, maxCpu: 100_000, maxMemoryMb: 100_000_000, maxDiskGb: 1_000_000, maxGpus: 64, serverChoice: true, updatedBy: 'test-harness' };
    await t.deps.prisma.userLimits.upsert({ where: { userId }, create: { userId, ...grant }, update: grant });
  }

  async function call(method: string, path: string, opts: { token?: string | null; body?: unknown; headers?: Record<string, string> } = {}) {
    const token = opts.token === undefined ? adminToken : opts.token;
    const res = await fetch(`${url}${path}`, {
      method,
      headers: {
        ...(token ? { authorization: `Bearer ${token}` } : {}),
        ...(opts.body !== undefined ? { 'content-type': 'application/json' } : {}),
        ...opts.headers,
      },
      body: opts.body === undefined ? undefined : typeof opts.body === 'string' ? opts.body : JSON.stringify(opts.body),
    });
    const text = await res.text();
    // eslint-disable-next-line @typescript-eslint/no-explicit-any
    const body: any = text ? JSON.parse(text) : undefined;
    return { status: res.status, body, headers: res.headers };
  }

  return {
    ...t,
    url,
    adminToken,
    userToken,
    call,
    async close() {
      server.closeAllConnections();
      server.close();
      try {
        // Before the worker stops, so heartbeating activities of what is terminated learn it
        // and let the shutdown finish; t.close() looks once more.
        await terminateOpenWorkflows(t.client, t.taskQueue);
      } finally {
        await (app.locals.close as () => Promise<void>)();
        if (runWorker) t.worker.shutdown();
        await workerRun;
        await t.close();
      }
    },
  };
}

export type Harness = Awaited<ReturnType<typeof startHarness>>;

/** Users the suites create workspaces as (the harness's own and the second user some suites mint). */
export const TEST_USERS = ['test-user', 'other-user'];

/**
 * Registers local engines (by index) as servers through the API, waits until onboarding made
 * them active and gives each `totalCpu` (this machine has two CPUs; operators may set it).
 */
export async function registerEngines(h: Harness, prefix: string, indexes: number[], labels: Record<string, string>, totalCpu = 32): Promise<string[]> {
  const ids: string[] = [];
  for (const i of indexes) {
    const e = localEngines()[i];
    const res = await h.call('POST', '/servers', { body: { name: `engine-${i + 1}`, hostname: `${uniq(prefix)}.local`, ipAddress: e.host, dockerPort: e.port, labels } });
    ids.push(res.body.server.id);
  }
  for (const id of ids) {
    // Onboarding runs helper containers on the engine beside every other suite's: a loaded fresh-clone run saw it
    // take over 60 s. A wait that ends says where onboarding stood.
    let last: { status?: string; statusReason?: string | null } = {};
    await eventually(async () => {
      last = (await h.call('GET', `/servers/${id}`)).body;
      return last.status === 'active';
    }, 100_000).catch((err: Error) => {
      throw new Error(`${err.message} (server ${id} is ${last.status}: ${last.statusReason ?? 'no reason'})`);
    });
    await h.call('PATCH', `/servers/${id}`, { body: { totalCpu } });
  }
  return ids;
}

/** Polls `fn` until it returns a truthy value or `ms` pass. */
export async function eventually<T>(fn: () => Promise<T | undefined | null | false>, ms = 30_000, every = 200): Promise<T> {
  const end = Date.now() + ms;
  let last: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v;
    } catch (err) {
      last = err;
    }
    if (Date.now() > end) throw new Error(`condition not met within ${ms} ms${last ? `: ${(last as Error).message}` : ''}`);
    await new Promise((r) => setTimeout(r, every));
  }
}
