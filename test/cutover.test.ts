import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import type { Worker } from '@temporalio/worker';
import { config } from '../lib/config';
import { createPrisma } from '../lib/prisma';
import { temporalDataConverter } from '../lib/temporal';
import { Restic } from '../lib/restic';
import { createWorker } from '../workers/worker';
import { backupWorkflow, cutoverWorkflow } from '../workflows';
import { cutoverStateQuery, rollbackSignal, approveSignal, type CutoverPlan, type CutoverState } from '../workflows/cutover';
import { FakeCloudflare } from './fake-cloudflare';
import { eventually } from './harness';
import { localEngines, uniq } from './helpers';
import { maybeRecordHistory, quietRuntime, testDeps, timeSkippingEnv } from './temporal-env';

const TOKEN = `cf-${randomBytes(12).toString('hex')}`;
const ZONE = 'podex.test';
const GCP = '34.120.1.10';
const NEW = '203.0.113.10';

/** The new platform's health endpoint: healthy for the first `healthyFor` requests, then 503 if told. */
class Health {
  served = 0;
  healthyFor = Infinity;
  private server = http.createServer((_req, res) => {
    this.served++;
    res.writeHead(this.served <= this.healthyFor ? 200 : 503).end();
  });
  url = '';
  async start() {
    this.server.listen(0, '127.0.0.1');
    await new Promise((r) => this.server.once('listening', r));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}/healthz`;
  }
  stop() {
    this.server.closeAllConnections();
    this.server.close();
  }
}

/** Runs `fn` with a fresh health endpoint, stopped afterwards whatever happens. */
async function withHealth(fn: (health: Health) => Promise<void>): Promise<void> {
  const health = new Health();
  await health.start();
  try {
    await fn(health);
  } finally {
    health.stop();
  }
}

describe('GCP → self-hosted cutover: Cloudflare DNS switch, health watch, rollback (time-skipping)', () => {
  let env: TestWorkflowEnvironment;
  let worker: Worker;
  let running: Promise<void>;
  let deps: ReturnType<typeof testDeps>;
  const cf = new FakeCloudflare();
  const taskQueue = uniq('cutover');
  const suite = uniq('cutover-suite');
  const serverIds: string[] = [];
  let dir: string;

  beforeAll(async () => {
    quietRuntime();
    await cf.start();
    cf.addToken(TOKEN);
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'podex-cutover-'));
    fs.writeFileSync(path.join(dir, 'password'), randomBytes(16).toString('hex'));
    deps = testDeps();
    const restic = new Restic({ repository: path.join(dir, 'repo'), passwordFile: path.join(dir, 'password'), cacheDir: path.join(dir, 'cache') });
    env = await timeSkippingEnv();
    worker = await createWorker({ connection: env.nativeConnection, namespace: env.namespace ?? 'default', taskQueue, dataConverter: temporalDataConverter(config()), deps: { ...deps, restic, cloudflare: { apiToken: TOKEN, baseURL: cf.url } } });
    running = worker.run();
    // The fleet the pre-flight checks: two real engines, found by this suite's label.
    for (const [i, e] of localEngines().slice(0, 2).entries()) {
      const s = await deps.prisma.workspaceServer.create({
        data: { name: `cutover-${i}`, hostname: `${uniq('cutover')}.local`, ipAddress: e.host, dockerPort: e.port, status: 'active', totalCpu: 4, totalMemoryMb: 4096, totalDiskGb: 20, labels: { suite } },
      });
      serverIds.push(s.id);
    }
    // A real, checked backup with a database snapshot: what the pre-flight asks for.
    await env.client.workflow.execute(backupWorkflow, { taskQueue, workflowId: uniq('cutover-backup'), args: [{ workspaceIds: [] }] });
  }, 180_000);

  afterAll(async () => {
    worker?.shutdown();
    await running;
    await env?.teardown();
    await deps.prisma.workspaceServer.deleteMany({ where: { id: { in: serverIds } } });
    await deps.close();
    await cf.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  /** A zone as GCP left it: the platform on a Google address, plus records the cutover must not touch. */
  function gcpZone() {
    const zoneId = cf.addZone(ZONE);
    cf.seed(zoneId, { name: '@', type: 'A', content: GCP, proxied: true });
    cf.seed(zoneId, { name: 'www', type: 'CNAME', content: ZONE, proxied: true });
    cf.seed(zoneId, { name: 'app', type: 'A', content: GCP, proxied: true });
    cf.seed(zoneId, { name: 'api', type: 'A', content: '34.120.1.11', proxied: true });
    cf.seed(zoneId, { name: '*', type: 'A', content: '34.120.1.12', proxied: false, ttl: 3600 });
    cf.seed(zoneId, { name: '@', type: 'TXT', content: '"v=spf1 -all"', ttl: 3600 });
    cf.seed(zoneId, { name: 'mail', type: 'MX', content: 'mx.example.net', ttl: 3600 });
    // Enough unrelated records that listing by name must not rely on one page.
    for (let i = 0; i < 120; i++) cf.seed(zoneId, { name: `old-${i}`, type: 'A', content: `10.0.${i >> 8}.${i & 255}`, ttl: 300 });
    return zoneId;
  }

  const plan = (zoneId: string, health: Health, extra: Partial<CutoverPlan> = {}): CutoverPlan => ({
    zoneId,
    targetIp: NEW,
    healthUrls: [health.url],
    preflight: { backupMaxAgeHours: 24, serverLabels: { suite } },
    watch: { hours: 48, probeEveryMinutes: 30, failuresToRollback: 3 },
    ...extra,
  });

  const start = (zoneId: string, p: CutoverPlan) => env.client.workflow.start(cutoverWorkflow, { taskQueue, workflowId: `cutover-${zoneId}`, args: [p] });
  async function startedUntil(zoneId: string, p: CutoverPlan, phase: string) {
    const handle = await start(zoneId, p);
    await eventually(async () => (await handle.query(cutoverStateQuery)).phase === phase, 60_000, 100);
    return handle;
  }

  it('runs the checklist, waits for approval, switches every record through Cloudflare 5xx retries, watches 48 h, keeps the rollback window 14 days, then hands over decommissioning', () =>
    withHealth(async (health) => {
    const zoneId = gcpZone();
    const untouched = cf.snapshot(zoneId).filter((r) => (r.type !== 'A' && r.type !== 'CNAME') || r.name.startsWith('old-'));
    const handle = await startedUntil(zoneId, plan(zoneId, health), 'awaiting-approval');
    const waiting = await handle.query(cutoverStateQuery);
    expect(waiting.checklist.map((c) => [c.item, c.ok])).toEqual([
      ['migrations applied', true],
      ['verified backup newer than 24 h', true],
      ['workspace servers healthy', true],
      ['new platform health URLs answer', true],
      ['Cloudflare token may edit the zone', true],
    ]);
    // Nothing has changed yet (the pre-flight TXT record came and went).
    expect(cf.snapshot(zoneId)).toEqual(expect.arrayContaining(untouched));
    expect(cf.snapshot(zoneId).find((r) => r.name === ZONE && r.type === 'A')?.content).toBe(GCP);

    // Cloudflare has a bad minute during the switch: 503s on edits, a 502 on a create.
    cf.fail('PATCH', /\/dns_records\/[0-9a-f]{32}$/, 503, 3);
    cf.fail('POST', /\/dns_records$/, 502, 1);
    await handle.signal(approveSignal, { by: 'ops@podex' });
    const done: CutoverState = await handle.result();

    expect(done).toMatchObject({ outcome: 'completed', phase: 'completed', approvedBy: 'ops@podex', rollbackReason: null, failuresInARow: 0 });
    expect(done.probesTotal).toBe((48 * 60) / 30);
    expect(done.probes.every((p) => p.ok)).toBe(true);
    expect(done.decommission.length).toBeGreaterThan(3);
    expect(done.captured[`*.${ZONE}`]).toEqual([expect.objectContaining({ content: '34.120.1.12', proxied: false, ttl: 3600 })]);
    expect(cf.requests.filter((r) => r.status >= 500).length).toBe(4);

    const after = cf.snapshot(zoneId);
    const address = after.filter((r) => (r.type === 'A' || r.type === 'CNAME') && !r.name.startsWith('old-'));
    expect(address).toEqual(
      [
        { name: ZONE, type: 'A', content: NEW, proxied: true, ttl: 1 },
        { name: `*.${ZONE}`, type: 'A', content: NEW, proxied: true, ttl: 1 },
        { name: `api.${ZONE}`, type: 'A', content: NEW, proxied: true, ttl: 1 },
        { name: `app.${ZONE}`, type: 'A', content: NEW, proxied: true, ttl: 1 },
        { name: `coolify.${ZONE}`, type: 'A', content: NEW, proxied: false, ttl: 1 },
        { name: `www.${ZONE}`, type: 'CNAME', content: ZONE, proxied: true, ttl: 1 },
      ].sort((a, b) => `${a.name} ${a.type} ${a.content}`.localeCompare(`${b.name} ${b.type} ${b.content}`)),
    );
    expect(after).toEqual(expect.arrayContaining(untouched));
    maybeRecordHistory('cutover', await handle.fetchHistory(), handle.workflowId);
    }), 300_000);

  it('rolls back on its own when health probes keep failing: every record is exactly as captured', () =>
    withHealth(async (health) => {
    const zoneId = gcpZone();
    const before = cf.snapshot(zoneId);
    // Healthy for the pre-flight and two watch probes, then down.
    health.healthyFor = 3;
    // The plan also asks for the pre-cutover database back, restored into a database of its own.
    const target = uniq('podex_cutover_rb').replace(/-/g, '_').toLowerCase();
    const handle = await start(zoneId, plan(zoneId, health, { autoApprove: true, restoreDatabaseTo: target }));
    const done: CutoverState = await handle.result();
    expect(done).toMatchObject({ outcome: 'rolled-back', phase: 'rolled-back', failuresInARow: 3 });
    try {
      const [{ n }] = await deps.prisma.$queryRaw<{ n: bigint }[]>`SELECT count(*) AS n FROM pg_database WHERE datname = ${target}`;
      expect(Number(n)).toBe(1);
      const url = new URL(process.env.DATABASE_URL!);
      url.pathname = `/${target}`;
      const restored = createPrisma(url.toString(), 1);
      try {
        expect(await restored.workspaceServer.count({ where: { id: { in: serverIds } } })).toBe(2);
      } finally {
        await restored.$disconnect();
      }
    } finally {
      await deps.prisma.$executeRawUnsafe(`DROP DATABASE IF EXISTS "${target}" WITH (FORCE)`);
    }
    expect(done.rollbackReason).toMatch(/3 health probes failed in a row: .*HTTP 503/);
    expect(done.probesTotal).toBe(5);
    expect(cf.snapshot(zoneId)).toEqual(before);
    maybeRecordHistory('cutover-rolled-back', await handle.fetchHistory(), handle.workflowId);
    }), 300_000);

  it('rolls back on the operator’s signal in the middle of the watch', () =>
    withHealth(async (health) => {
    const zoneId = gcpZone();
    const before = cf.snapshot(zoneId);
    const handle = await start(zoneId, plan(zoneId, health, { autoApprove: true }));
    // Ten hours pass in the test server's time: the TTL wait, the switch and twenty probes.
    await env.sleep('10 hours');
    const mid = await handle.query(cutoverStateQuery);
    expect(mid.phase).toBe('watching');
    expect(mid.probesTotal).toBeGreaterThanOrEqual(15);
    expect(cf.snapshot(zoneId).find((r) => r.name === `app.${ZONE}`)?.content).toBe(NEW);
    await handle.signal(rollbackSignal, { by: 'ops@podex', reason: 'users report errors' });
    const done: CutoverState = await handle.result();
    expect(done).toMatchObject({ outcome: 'rolled-back', rollbackReason: 'asked by ops@podex: users report errors' });
    expect(cf.snapshot(zoneId)).toEqual(before);
    }), 300_000);

  it('a 403 part-way through the switch stops with a clear error and leaves nothing half-switched', () =>
    withHealth(async (health) => {
    const zoneId = gcpZone();
    const before = cf.snapshot(zoneId);
    const p = plan(zoneId, health, { autoApprove: true });
    const handle = await startedUntil(zoneId, p, 'waiting-for-ttl');
    // `coolify` is the one record that must be created: the token may no longer create records.
    cf.fail('POST', /\/dns_records$/, 403, 1000, [{ code: 10000, message: 'Authentication error' }]);
    const err = await handle.result().then(
      () => undefined,
      (e: Error & { cause?: Error }) => e,
    );
    cf.clearFaults();
    expect(err?.cause?.message).toMatch(/switching coolify\.podex\.test failed: .*403 \(10000: Authentication error\); every record was restored as captured/);
    const state = await handle.query(cutoverStateQuery);
    expect(state).toMatchObject({ outcome: 'failed', phase: 'failed' });
    expect(state.switched.length).toBeGreaterThan(0);
    expect(cf.snapshot(zoneId)).toEqual(before);
    // A 403 is not retried: Cloudflare refused exactly once.
    expect(cf.requests.filter((r) => r.status === 403).length).toBe(1);
    }), 300_000);

  it('a failed pre-flight changes nothing', () =>
    withHealth(async (health) => {
    const zoneId = gcpZone();
    const before = cf.snapshot(zoneId);
    health.healthyFor = 0;
    const handle = await start(zoneId, plan(zoneId, health, { autoApprove: true }));
    await expect(handle.result()).rejects.toMatchObject({ cause: expect.objectContaining({ message: expect.stringMatching(/pre-flight failed: new platform health URLs answer: .*HTTP 503/) }) });
    const state = await handle.query(cutoverStateQuery);
    expect(state.checklist.find((c) => c.item === 'new platform health URLs answer')).toMatchObject({ ok: false });
    expect(cf.snapshot(zoneId)).toEqual(before);
    }), 120_000);
});
