/**
 * Provisioning speed, against the real stack (Temporal, PostgreSQL, Redis, the Docker
 * engines over mutual TLS with gVisor), with the real worker and API processes.
 *
 * - p50/p99: from `POST /workspaces` until the container is running, over BENCH_N workspaces
 *   on one engine, against the raw baseline measured in the same run, interleaved: dockerode
 *   creates the same network, volume and hardened container of the same image on the same
 *   engine and starts it. Both sides are timed to the engine's own record of the start
 *   (`State.StartedAt`, same clock). Ours goes on to wait until the workspace answers (the
 *   readiness probe) before the API replies: `*_ready_ratio` compares that reply with the
 *   baseline plus the same probe, and `*_reply_vs_raw_ratio` with the bare baseline.
 * - concurrent: BENCH_CONCURRENT creates at once over every engine, our throughput against
 *   raw parallel dockerode; capacity is set to exactly what the burst needs, and afterwards
 *   every server's reservations and its actual containers are checked against capacity.
 * - placement: one decision over 10,000 synthetic servers (median of many), against a bare
 *   least-loaded scan of the same array.
 * - reservations: the real reserveCapacity activity against PostgreSQL, many callers at once
 *   on a few servers, against a bare counter UPDATE with the same concurrency.
 *
 * BENCH_ONLY=db runs the placement and reservation parts alone.
 *
 * Last line: {"p50_ratio", "p99_ratio", "concurrent_ratio", "overbooked", "placement_ms", "reservations_per_s", ...}.
 */
import type Docker from 'dockerode';
import { createReservationActivities } from '../activities/reservations';
import { mintToken } from '../api/auth';
import { place, type Candidate } from '../domain/placement';
import { TIERS } from '../domain/tiers';
import { config } from '../lib/config';
import { parseEndpoints, type DockerFleet, type EngineEndpoint } from '../lib/docker-fleet';
import { createPrisma, type PrismaClient } from '../lib/prisma';
import { apiClient, benchFleet, percentile, pool, rawProvision, rawReady, removeLabelled, round, startApi, startWorker, stop, grantBenchUser } from './lib';

const N = Number(process.env.BENCH_N ?? 30);
const WARMUP = Number(process.env.BENCH_WARMUP ?? 3);
const CONCURRENT = Number(process.env.BENCH_CONCURRENT ?? 200);
const PLACEMENT_SERVERS = 10_000;
const RESERVATIONS = Number(process.env.BENCH_RESERVATIONS ?? 4000);
const BURST_TIMEOUT_MS = 10 * 60_000;
const RESERVATION_CALLERS = Number(process.env.BENCH_RESERVATION_CALLERS ?? 32);
const OWNER = 'bench-user';
const RAW_LABEL = 'podex.bench';
const indices = (n: number) => Array.from({ length: n }, (_, i) => i);
const tier = TIERS.free;

const log = (msg: string, extra: Record<string, unknown> = {}) => console.error(JSON.stringify({ msg, ...extra }));

/** Removes what earlier runs left on the engines: our workspaces' and the baseline's objects. */
const cleanEngine = (docker: Docker) => removeLabelled(docker, [`podex.owner=${OWNER}`, `${RAW_LABEL}=1`]);

/** The engine's record of when the container started, in epoch milliseconds (its nanoseconds cut to milliseconds). */
async function startedAt(c: Docker.Container): Promise<number> {
  const at = (await c.inspect()).State.StartedAt;
  const ms = Date.parse(at.replace(/(\.\d{3})\d*Z$/, '$1Z'));
  if (!Number.isFinite(ms)) throw new Error(`unreadable StartedAt ${at}`);
  return ms;
}

async function timed(fn: () => Promise<unknown>): Promise<number> {
  const t0 = performance.now();
  await fn();
  return performance.now() - t0;
}

/** Servers whose reservations, or whose actual workspace containers, exceed their capacity. */
async function overbooked(prisma: PrismaClient, fleet: DockerFleet, serverIds: string[], overcommit: number): Promise<string[]> {
  const over: string[] = [];
  for (const s of await prisma.workspaceServer.findMany({ where: { id: { in: serverIds } } })) {
    const containers = await fleet
      .engine({ host: s.ipAddress, port: s.dockerPort ?? 2376 })
      .listContainers({ filters: JSON.stringify({ label: [`podex.owner=${OWNER}`], status: ['running'] }) });
    const limit = s.totalCpu * overcommit;
    if (s.reservedCpu > limit || containers.length * tier.cpu > limit) over.push(`${s.name}: reserved ${s.reservedCpu}, running ${containers.length}, total ${s.totalCpu}`);
  }
  return over;
}

function syntheticServers(n: number): Candidate[] {
  const regions = ['eu', 'us', 'ap'];
  return Array.from({ length: n }, (_, i) => ({
    id: `00000000-0000-4000-8000-${i.toString(16).padStart(12, '0')}`,
    name: `synthetic-${i}`,
    status: i % 50 === 0 ? 'unreachable' : 'active',
    cordoned: i % 97 === 0,
    inMaintenance: i % 101 === 0,
    architecture: i % 5 === 0 ? 'arm64' : 'amd64',
    region: regions[i % 3],
    labels: { pool: i % 4 === 0 ? 'gpu' : 'general', rack: String(i % 40) },
    hasGpu: i % 4 === 0,
    gpuType: i % 4 === 0 ? 'a100' : null,
    gpuCount: i % 4 === 0 ? 2 : 0,
    total: { cpu: 64, memoryMb: 262_144, diskGb: 2000 },
    reserved: { cpu: (i * 7) % 64, memoryMb: (i * 4099) % 262_144, diskGb: (i * 13) % 2000 },
  }));
}

function placementBench(): { placement_ms: number; placement_baseline_ms: number } {
  const servers = syntheticServers(PLACEMENT_SERVERS);
  const req = { need: { cpu: 2, memoryMb: 4096, diskGb: 20 }, strategy: 'SPREAD' as const, region: 'eu', architecture: 'amd64', labels: { pool: 'general' }, overcommit: 1 };
  const baseline = () => {
    let best: Candidate | undefined;
    let bestLoad = Infinity;
    for (const s of servers) {
      const load = (s.reserved.cpu + req.need.cpu) / s.total.cpu;
      if (load < bestLoad) [best, bestLoad] = [s, load];
    }
    return best;
  };
  const ours: number[] = [];
  const base: number[] = [];
  for (let i = 0; i < 300; i++) {
    const t0 = performance.now();
    const p = place(servers, req);
    const t1 = performance.now();
    baseline();
    const t2 = performance.now();
    if (!p.ok) throw new Error('synthetic placement found no server');
    if (i >= 50) {
      ours.push(t1 - t0);
      base.push(t2 - t1);
    }
  }
  return { placement_ms: round(percentile(ours, 50), 3), placement_baseline_ms: round(percentile(base, 50), 3) };
}

async function reservationBench(prisma: PrismaClient, overcommit: number) {
  const servers = await Promise.all(
    Array.from({ length: 4 }, (_, i) =>
      prisma.workspaceServer.create({
        data: { name: `bench-resv-${i}`, hostname: `bench-resv-${i}.local`, ipAddress: `127.0.2.${i + 1}`, status: 'active', totalCpu: RESERVATIONS / 4, totalMemoryMb: RESERVATIONS * 1024, totalDiskGb: RESERVATIONS * 5 },
      }),
    ),
  );
  const ids = Array.from({ length: RESERVATIONS }, () => crypto.randomUUID());
  await prisma.workspace.createMany({ data: ids.map((id, i) => ({ id, ownerId: `bench-resv-${i % 50}`, name: `r${i}`, tier: 'free', status: 'pending' })) });
  const { reserveCapacity, releaseCapacity } = createReservationActivities({ prisma, overcommit });
  const need = { cpu: tier.cpu, memoryMb: tier.memoryMb, diskGb: tier.diskGb };
  // Warm-up: the pool's connections and the JIT.
  await pool(indices(50), RESERVATION_CALLERS, async (i) => void (await reserveCapacity({ workspaceId: ids[i], need, strategy: 'SPREAD' })));
  await pool(indices(50), RESERVATION_CALLERS, async (i) => void (await releaseCapacity(ids[i])));
  const seconds = await pool(indices(RESERVATIONS), RESERVATION_CALLERS, async (i) => void (await reserveCapacity({ workspaceId: ids[i], need, strategy: 'SPREAD' })));
  // Capacity was exactly the demand: every server is full, none beyond.
  const after = await prisma.workspaceServer.findMany({ where: { id: { in: servers.map((s) => s.id) } } });
  const assigned = await prisma.workspace.count({ where: { id: { in: ids }, assignedCpu: { not: null } } });
  const overfull = after.filter((s) => s.reservedCpu > s.totalCpu).length;
  const releaseSeconds = await pool(indices(RESERVATIONS), RESERVATION_CALLERS, async (i) => void (await releaseCapacity(ids[i])));
  // The baseline: a bare counter increment on the same rows with the same concurrency.
  const baselineSeconds = await pool(indices(RESERVATIONS), RESERVATION_CALLERS, async (i) => {
    await prisma.$executeRaw`UPDATE workspace_servers SET reserved_cpu = reserved_cpu + 0 WHERE id = ${servers[i % 4].id}::uuid`;
  });
  await prisma.workspace.deleteMany({ where: { id: { in: ids } } });
  await prisma.workspaceServer.deleteMany({ where: { id: { in: servers.map((s) => s.id) } } });
  return {
    reservations_per_s: Math.round(RESERVATIONS / seconds),
    releases_per_s: Math.round(RESERVATIONS / releaseSeconds),
    reservation_baseline_updates_per_s: Math.round(RESERVATIONS / baselineSeconds),
    reservations_assigned: assigned,
    reservation_servers_overfull: overfull,
  };
}

async function main(): Promise<void> {
  const c = config();
  const prisma = createPrisma(c.DATABASE_URL, RESERVATION_CALLERS);
  const fleet = benchFleet(c, 120_000);
  const engines: EngineEndpoint[] = parseEndpoints(process.env.PODEX_LOCAL_ENGINES);
  const image = c.WORKSPACE_IMAGE;
  const port = 18000 + Math.floor(Math.random() * 1000);
  const taskQueue = `bench-provision-${process.pid}`;

  const cleanDb = async () => {
    await prisma.workspace.deleteMany({ where: { ownerId: OWNER } });
    await prisma.workspaceServer.deleteMany({ where: { hostname: { startsWith: 'bench-' } } });
  };
  await cleanDb();
  await Promise.all(engines.map((e) => cleanEngine(fleet.engine(e))));

  const placement = placementBench();
  log('placement', placement);
  const reservations = await reservationBench(prisma, c.OVERCOMMIT_RATIO);
  log('reservations', reservations);
  if (process.env.BENCH_ONLY === 'db') {
    // Placement and reservations alone, without engines: a quick run while tuning them.
    console.log(JSON.stringify({ ...placement, ...reservations }));
    await prisma.$disconnect();
    return;
  }

  const worker = await startWorker(taskQueue);
  const api = await startApi(port, { TEMPORAL_TASK_QUEUE: taskQueue });
  try {
    const base = `http://127.0.0.1:${port}`;
    const admin = apiClient(base, await mintToken(c.JWT_SECRET_KEY, 'bench-admin', 'admin'));
    const user = apiClient(base, await mintToken(c.JWT_SECRET_KEY, OWNER, 'user'));
    await grantBenchUser(admin, OWNER);

    const serverIds: string[] = [];
    for (const [i, e] of engines.entries()) {
      const res = await admin('POST', '/servers', { name: `bench-engine-${i + 1}`, hostname: `bench-engine-${i + 1}-${process.pid}.local`, ipAddress: e.host, dockerPort: e.port });
      if (res.status !== 202 && res.status !== 201) throw new Error(`registering engine ${i + 1}: ${res.status} ${JSON.stringify(res.body)}`);
      serverIds.push(res.body.server.id);
    }
    for (const id of serverIds) {
      for (let i = 0; ; i++) {
        const s = await admin('GET', `/servers/${id}`);
        if (s.body.status === 'active') break;
        if (i > 300) throw new Error(`server ${id} did not become active: ${JSON.stringify(s.body)}`);
        await new Promise((r) => setTimeout(r, 200));
      }
    }
    const setCapacity = (id: string, cpu: number) => admin('PATCH', `/servers/${id}`, { totalCpu: cpu, totalMemoryMb: cpu * tier.memoryMb, totalDiskGb: cpu * tier.diskGb });

    // Sequential: one engine, ours and the baseline interleaved.
    const target = serverIds[0];
    const docker = fleet.engine(engines[0]);
    await setCapacity(target, WARMUP + N + 1);
    const oursRunning: number[] = [];
    const rawRunning: number[] = [];
    const oursReply: number[] = [];
    const rawReturn: number[] = [];
    const rawPlusReady: number[] = [];
    const created: string[] = [];
    for (let i = 0; i < WARMUP + N; i++) {
      const t0 = Date.now();
      const res = await user('POST', '/workspaces?wait=true', { name: `seq-${i}`, tier: tier.name, server: target });
      const reply = Date.now() - t0;
      if (res.status !== 201) throw new Error(`create ${i}: ${res.status} ${JSON.stringify(res.body)}`);
      created.push(res.body.workspace.id);
      const running = (await startedAt(docker.getContainer(res.body.workspace.containerName))) - t0;
      let container: Docker.Container | undefined;
      const r0 = Date.now();
      const r = await timed(async () => (container = await rawProvision(docker, `bench-raw-seq-${process.pid}-${i}`, image, RAW_LABEL)));
      const rRunning = (await startedAt(container!)) - r0;
      const ready = await timed(() => rawReady(container!));
      if (i >= WARMUP) {
        oursRunning.push(running);
        rawRunning.push(rRunning);
        oursReply.push(reply);
        rawReturn.push(r);
        rawPlusReady.push(r + ready);
      }
    }
    const p = (xs: number[], q: number) => Math.round(percentile(xs, q));
    const sequential = {
      ours_running_p50_ms: p(oursRunning, 50),
      ours_running_p99_ms: p(oursRunning, 99),
      raw_running_p50_ms: p(rawRunning, 50),
      raw_running_p99_ms: p(rawRunning, 99),
      ours_reply_p50_ms: p(oursReply, 50),
      ours_reply_p99_ms: p(oursReply, 99),
      raw_return_p50_ms: p(rawReturn, 50),
      raw_return_p99_ms: p(rawReturn, 99),
      raw_ready_p50_ms: p(rawPlusReady, 50),
      raw_ready_p99_ms: p(rawPlusReady, 99),
    };
    log('sequential', sequential);
    await Promise.all(created.map((id) => user('DELETE', `/workspaces/${id}`)));
    await cleanEngine(docker);

    // Concurrent: every engine, capacity set to exactly the burst.
    const share = (i: number) => Math.floor(CONCURRENT / serverIds.length) + (i < CONCURRENT % serverIds.length ? 1 : 0);
    for (const [i, id] of serverIds.entries()) await setCapacity(id, share(i));
    // Creates are accepted at once (202), or refused at once (503 + Retry-After) when the registry already shows the
    // fleet full; the burst ends when the last accepted workspace is final.
    const t0 = performance.now();
    const burst = await Promise.all(Array.from({ length: CONCURRENT }, (_, i) => user('POST', '/workspaces', { name: `burst-${i}`, tier: tier.name })));
    const unexpected = burst.filter((r) => r.status !== 202 && r.status !== 503);
    if (unexpected.length) throw new Error(`burst create: ${unexpected[0].status} ${JSON.stringify(unexpected[0].body)}`);
    const refusedAtOnce = burst.filter((r) => r.status === 503).length;
    const ids = burst.filter((r) => r.status === 202).map((r) => r.body.workspace.id as string);
    let final: { status: string; statusReason: string | null }[] = [];
    for (let waited = 0; waited < BURST_TIMEOUT_MS; waited += 250) {
      final = await prisma.workspace.findMany({ where: { id: { in: ids }, status: { in: ['running', 'failed'] } }, select: { status: true, statusReason: true } });
      if (final.length === ids.length) break;
      await new Promise((r) => setTimeout(r, 250));
    }
    const oursSeconds = (performance.now() - t0) / 1000;
    const oursOk = final.filter((w) => w.status === 'running').length;
    const refused = refusedAtOnce + final.filter((w) => /^no capacity/.test(w.statusReason ?? '')).length;
    const over = await overbooked(prisma, fleet, serverIds, c.OVERCOMMIT_RATIO);
    const reasons = [...new Set(final.filter((w) => w.status === 'failed').map((w) => w.statusReason))];
    log('burst (ours)', { ok: oursOk, refused, failed: final.length - oursOk - (refused - refusedAtOnce), unfinished: ids.length - final.length, seconds: round(oursSeconds), over, reasons });
    await Promise.all(ids.map((id) => user('DELETE', `/workspaces/${id}`)));
    await Promise.all(engines.map((e) => cleanEngine(fleet.engine(e))));

    const r0 = performance.now();
    const rawBurst = await Promise.allSettled(
      Array.from({ length: CONCURRENT }, (_, i) => rawProvision(fleet.engine(engines[i % engines.length]), `bench-raw-burst-${process.pid}-${i}`, image, RAW_LABEL)),
    );
    const rawSeconds = (performance.now() - r0) / 1000;
    const rawOk = rawBurst.filter((r) => r.status === 'fulfilled').length;
    log('burst (raw)', { ok: rawOk, seconds: round(rawSeconds), errors: [...new Set(rawBurst.flatMap((r) => (r.status === 'rejected' ? [String(r.reason?.message ?? r.reason)] : [])))] });
    await Promise.all(engines.map((e) => cleanEngine(fleet.engine(e))));

    const { reservations_per_s: _, ...reservationsRest } = reservations;
    const oursRate = oursOk / oursSeconds;
    const rawRate = rawOk / rawSeconds;
    console.log(
      JSON.stringify({
        p50_ratio: round(sequential.ours_running_p50_ms / sequential.raw_running_p50_ms),
        p99_ratio: round(sequential.ours_running_p99_ms / sequential.raw_running_p99_ms),
        concurrent_ratio: round(oursRate / rawRate),
        overbooked: over.length,
        placement_ms: placement.placement_ms,
        reservations_per_s: reservations.reservations_per_s,
        workspaces: N,
        ...sequential,
        p50_ready_ratio: round(sequential.ours_reply_p50_ms / sequential.raw_ready_p50_ms),
        p99_ready_ratio: round(sequential.ours_reply_p99_ms / sequential.raw_ready_p99_ms),
        p50_reply_vs_raw_ratio: round(sequential.ours_reply_p50_ms / sequential.raw_return_p50_ms),
        p99_reply_vs_raw_ratio: round(sequential.ours_reply_p99_ms / sequential.raw_return_p99_ms),
        concurrent: CONCURRENT,
        concurrent_ours_per_s: round(oursRate),
        concurrent_raw_per_s: round(rawRate),
        concurrent_ours_ok: oursOk,
        concurrent_raw_ok: rawOk,
        placement_baseline_ms: placement.placement_baseline_ms,
        ...reservationsRest,
      }),
    );
  } finally {
    await Promise.all([stop(api), stop(worker)]);
    await Promise.all(engines.map((e) => cleanEngine(fleet.engine(e)).catch(() => undefined)));
    await cleanDb();
    await prisma.$disconnect();
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
