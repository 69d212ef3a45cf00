/**
 * Draining a server, against the real stack with the real worker and API processes:
 * BENCH_WORKSPACES (50) running workspaces holding BENCH_MB (50) MB each are drained from
 * engine-1 to engine-2 with maxParallel BENCH_PARALLEL (8). The baseline, in the same run,
 * copies the same volumes between the same engines with a raw tar stream (dockerode
 * getArchive → putArchive into a fresh container and volume), BENCH_PARALLEL at a time.
 *
 * Ours does more than copy: stop, prepare the target, copy, hash the copy on the target's
 * server to verify its checksum, start, hold healthy (MIGRATION_HOLD_HEALTHY_SECONDS, 1 s
 * here), switch, remove the source. Afterwards every workspace's files are hashed on the
 * target against the source.
 *
 * Where the time goes, three ways:
 * - Each migration's history is read back from Temporal: the mean time of its steps, and
 *   `floor_ratio`, the ratio if the copy cost exactly the raw copy's time per slot and only
 *   the steps no move can skip were added (stop the source, start the target, hold it).
 * - The machine's CPU seconds (/proc/stat, every process) of the raw copy and of the drain:
 *   `cpu_ratio`. `raw_busy`/`drain_busy` say how much of the machine's cores each phase
 *   kept busy; near 1 the phase is CPU-bound and its time follows its CPU.
 * - The "live steps", measured with dockerode alone on the same engines between the two:
 *   what any move of a running workspace must do besides copying (the workspace's network
 *   and hardened gVisor container made and started on the copied volume, its readiness
 *   probed, then stopped and removed with its network and volume, as a source is).
 *   `cpu_floor_ratio` = (raw copy + live steps) / raw copy in CPU seconds: the lowest
 *   `cpu_ratio` any orchestrator could reach on this machine. `cpu_floor_verified_ratio` adds
 *   the target-side checksum every move must make, done as ours does (measured the same way).
 * - `drain_cpu_by` splits the drain's CPU by process (the worker, the Temporal server, the
 *   API, and the rest: engines, gVisor sandboxes, the kernel); `raw_relay_cpu_s` is what the
 *   baseline's own relay (this process) spent, to set beside the worker's.
 *
 * Last line: {"ratio", "max_parallel_seen", "checksum_mismatches", ...}.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { Client, Connection } from '@temporalio/client';
import type Docker from 'dockerode';
import { manifestOnServer } from '../activities/migration-docker';
import { mintToken } from '../api/auth';
import { WORKSPACE_MOUNT, workspaceNames } from '../domain/container-spec';
import { config } from '../lib/config';
import { toolsImage } from '../lib/tools-image';
import { execIn } from '../lib/docker-exec';
import { WORKFLOW_ID } from '../lib/constants';
import { parseEndpoints } from '../lib/docker-fleet';
import { createPrisma } from '../lib/prisma';
import { apiClient, benchFleet, machineCpuSeconds, measured, pool, processCpuSeconds, rawProvision, rawReady, removeLabelled, round, startApi, startWorker, stop, grantBenchUser } from './lib';

const WORKSPACES = Number(process.env.BENCH_WORKSPACES ?? 50);
const MB = Number(process.env.BENCH_MB ?? 50);
const PARALLEL = Number(process.env.BENCH_PARALLEL ?? 8);
const HOLD_SECONDS = Number(process.env.BENCH_HOLD_SECONDS ?? 1);
const CORES = os.cpus().length;
const OWNER = 'bench-drain';
const RAW_LABEL = 'podex.bench';
const SUMS = `cd ${WORKSPACE_MOUNT} && find . -type f | sort | xargs sha256sum`;

const log = (msg: string, extra: Record<string, unknown> = {}) => console.error(JSON.stringify({ msg, ...extra }));

/** Mean seconds of each activity over the migrations' histories (scheduled → completed, retries included). */
async function stepMeans(workflowIds: string[]): Promise<Record<string, number>> {
  const connection = await Connection.connect({ address: process.env.TEMPORAL_ADDRESS ?? '127.0.0.1:7233' });
  const client = new Client({ connection, namespace: process.env.TEMPORAL_NAMESPACE ?? 'default' });
  const sums = new Map<string, { s: number; n: number }>();
  const at = (e: { eventTime?: { seconds?: unknown; nanos?: number | null } | null }) => Number(e.eventTime?.seconds ?? 0) + (e.eventTime?.nanos ?? 0) / 1e9;
  try {
    for (const id of workflowIds) {
      const events = (await client.workflow.getHandle(id).fetchHistory()).events ?? [];
      const scheduled = new Map<string, { name: string; t: number }>();
      for (const e of events) {
        const a = e.activityTaskScheduledEventAttributes;
        if (a?.activityType?.name) scheduled.set(String(e.eventId), { name: a.activityType.name, t: at(e) });
        const c = e.activityTaskCompletedEventAttributes;
        const s = c && scheduled.get(String(c.scheduledEventId));
        if (s) {
          const sum = sums.get(s.name) ?? { s: 0, n: 0 };
          sum.s += at(e) - s.t;
          sum.n++;
          sums.set(s.name, sum);
        }
      }
    }
  } finally {
    await connection.close();
  }
  return Object.fromEntries([...sums].map(([k, v]) => [k, round(v.s / v.n)]));
}

const cleanEngine = (docker: Docker) => removeLabelled(docker, [`podex.owner=${OWNER}`, `${RAW_LABEL}=drain`, `${RAW_LABEL}=1`]);

async function main(): Promise<void> {
  const c = config();
  const prisma = createPrisma(c.DATABASE_URL, 4);
  const fleet = benchFleet(c);
  const [e1, e2] = parseEndpoints(process.env.PODEX_LOCAL_ENGINES);
  const [d1, d2] = [fleet.engine(e1), fleet.engine(e2)];
  const port = 19000 + Math.floor(Math.random() * 1000);
  const taskQueue = `bench-drain-${process.pid}`;
  const cleanDb = async () => {
    await prisma.migration.deleteMany({ where: { workspaceId: { in: (await prisma.workspace.findMany({ where: { ownerId: OWNER }, select: { id: true } })).map((w) => w.id) } } });
    await prisma.workspace.deleteMany({ where: { ownerId: OWNER } });
    await prisma.workspaceServer.deleteMany({ where: { hostname: { startsWith: 'bench-drain-' } } });
  };
  await cleanDb();
  await Promise.all([cleanEngine(d1), cleanEngine(d2)]);

  const worker = await startWorker(taskQueue, { MIGRATION_HOLD_HEALTHY_SECONDS: String(HOLD_SECONDS) });
  const api = await startApi(port, { TEMPORAL_TASK_QUEUE: taskQueue, MIGRATION_HOLD_HEALTHY_SECONDS: String(HOLD_SECONDS) });
  try {
    const base = `http://127.0.0.1:${port}`;
    const admin = apiClient(base, await mintToken(c.JWT_SECRET_KEY, 'bench-admin', 'admin'));
    const user = apiClient(base, await mintToken(c.JWT_SECRET_KEY, OWNER, 'user'));
    await grantBenchUser(admin, OWNER);
    const servers: string[] = [];
    for (const [i, e] of [e1, e2].entries()) {
      const res = await admin('POST', '/servers', { name: `bench-drain-${i + 1}`, hostname: `bench-drain-${i + 1}-${process.pid}.local`, ipAddress: e.host, dockerPort: e.port });
      servers.push(res.body.server.id);
    }
    for (const id of servers) {
      for (let i = 0; (await admin('GET', `/servers/${id}`)).body.status !== 'active'; i++) {
        if (i > 300) throw new Error(`server ${id} did not become active`);
        await new Promise((r) => setTimeout(r, 200));
      }
      await admin('PATCH', `/servers/${id}`, { totalCpu: WORKSPACES + 8, totalMemoryMb: (WORKSPACES + 8) * 1024, totalDiskGb: (WORKSPACES + 8) * 5 });
    }

    // The workspaces on engine-1, each holding MB of random data, and their checksums.
    const ids: string[] = [];
    const sums = new Map<string, string>();
    await pool(
      Array.from({ length: WORKSPACES }, (_, i) => i),
      4,
      async (i) => {
        const res = await user('POST', '/workspaces?wait=true', { name: `drain-${i}`, tier: 'free', server: servers[0] });
        if (res.status !== 201) throw new Error(`create ${i}: ${res.status} ${JSON.stringify(res.body)}`);
        const ws = res.body.workspace;
        ids.push(ws.id);
        const cont = d1.getContainer(ws.containerName);
        const w = await execIn(cont, ['sh', '-c', `head -c ${MB * 1024 * 1024} /dev/urandom > ${WORKSPACE_MOUNT}/data.bin && echo ${i} > ${WORKSPACE_MOUNT}/id && sync`]);
        if (w.code !== 0) throw new Error(`filling ${ws.id}: ${w.out}`);
        sums.set(ws.id, (await execIn(cont, ['sh', '-c', SUMS])).stdout);
      },
    );
    log('workspaces ready', { workspaces: ids.length, mb: MB });

    // Baseline: the same volumes, engine-1 → engine-2, a raw tar stream per volume.
    const image = c.WORKSPACE_IMAGE;
    const relay0 = process.cpuUsage();
    const raw = await measured(() =>
      pool(ids, PARALLEL, async (id) => {
        const name = `bench-raw-drain-${id}`;
        await d2.createVolume({ Name: name, Labels: { [RAW_LABEL]: 'drain' } });
        const target = await d2.createContainer({ name, Image: image, Labels: { [RAW_LABEL]: 'drain' }, HostConfig: { Binds: [`${name}:${WORKSPACE_MOUNT}`], NetworkMode: 'none' } });
        const archive = (await d1.getContainer(`podex-ws-${id}`).getArchive({ path: WORKSPACE_MOUNT })) as unknown as Readable;
        await target.putArchive(archive, { path: '/' });
      }),
    );
    const rawSeconds = raw.seconds;
    const relay = process.cpuUsage(relay0);
    const rawRelayCpu = (relay.user + relay.system) / 1e6;
    log('raw copy', { seconds: round(rawSeconds), cpu_seconds: round(raw.cpuSeconds) });
    await Promise.all(ids.map((id) => d2.getContainer(`bench-raw-drain-${id}`).remove({ force: true })));

    // The checksum the issue asks of every move, on the target's side, done as ours does it
    // (a short-lived read-only container on the target's server hashing the copied volume).
    const verify = await measured(() =>
      pool(ids, PARALLEL, async (id) => {
        await manifestOnServer(d2, `bench-${id}`, toolsImage(config()), 'verify', `bench-raw-drain-${id}`);
      }),
    );
    log('verify', { seconds: round(verify.seconds), cpu_seconds: round(verify.cpuSeconds) });

    // What any live move must do besides copying, with dockerode alone on the same engines:
    // the workspace's network and gVisor container made and started on the copied volume,
    // readiness probed, then stopped and removed with its network and volume (as a source is).
    const live = await measured(() =>
      pool(ids, PARALLEL, async (id) => {
        const volume = `bench-raw-drain-${id}`;
        const ws = await rawProvision(d2, `bench-live-${id}`, image, RAW_LABEL, volume);
        await rawReady(ws);
        await ws.stop({ t: 10 });
        await ws.remove({ force: true });
        await d2.getNetwork(workspaceNames(`bench-live-${id}`).network).remove();
        await d2.getVolume(volume).remove();
      }),
    );
    log('live steps', { seconds: round(live.seconds), cpu_seconds: round(live.cpuSeconds) });
    await cleanEngine(d2);

    // Ours: the drain. Migrations in flight are counted in the database every 250 ms; the
    // drain's own page is read every 2 s, as an operator's console would (each read is a
    // workflow query plus one describe per copy in progress).
    // Who spends it: the worker (workflows, activities, the copy's relay), the Temporal server, the API.
    const temporalPid = Number(fs.readFileSync(path.join(__dirname, '..', '.stack', 'temporal', 'temporal.pid'), 'utf8').trim()) || undefined;
    const byProcess = () => ({ worker: processCpuSeconds(worker.pid), temporal: processCpuSeconds(temporalPid), api: processCpuSeconds(api.pid) });
    const by0 = byProcess();
    const drainCpu0 = machineCpuSeconds();
    const t0 = performance.now();
    const started = await admin('POST', `/servers/${servers[0]}/drain`, { deadline: new Date(Date.now() + 3_600_000).toISOString(), maxParallel: PARALLEL });
    if (started.status !== 202) throw new Error(`drain: ${started.status} ${JSON.stringify(started.body)}`);
    let seen = 0;
    let drain: { workflowStatus: string; phase: string; maxParallelSeen: number; workspaces: { workspaceId: string; phase: string; attempts: number; error: string | null }[] };
    for (let i = 0; ; i++) {
      seen = Math.max(seen, await prisma.migration.count());
      if (i % 8 === 0) {
        drain = (await admin('GET', `/servers/${servers[0]}/drain`)).body;
        if (drain.workflowStatus && drain.workflowStatus !== 'RUNNING') break;
      }
      await new Promise((r) => setTimeout(r, 250));
    }
    const oursSeconds = (performance.now() - t0) / 1000;
    const drainCpu = machineCpuSeconds() - drainCpu0;
    const by1 = byProcess();
    const drainCpuBy = {
      worker: round(by1.worker - by0.worker),
      temporal_server: round(by1.temporal - by0.temporal),
      api: round(by1.api - by0.api),
      engines_sandboxes_kernel_rest: round(drainCpu - (by1.worker - by0.worker) - (by1.temporal - by0.temporal) - (by1.api - by0.api)),
    };
    log('drain', { seconds: round(oursSeconds), cpu_seconds: round(drainCpu), phase: drain.phase, status: drain.workflowStatus, failed: drain.workspaces.filter((w) => w.phase !== 'moved').map((w) => w.error) });

    const steps = await stepMeans(drain.workspaces.map((w) => `${WORKFLOW_ID.migrateWorkspace(w.workspaceId)}-drain-${w.attempts - 1}`));
    const rawSlot = (rawSeconds * PARALLEL) / WORKSPACES;
    const unskippable = (steps.stopContainer ?? 0) + (steps.startAndWaitReady ?? 0) + (steps.holdHealthy ?? 0);
    log('steps', { mean_seconds: steps, raw_seconds_per_slot: round(rawSlot) });

    let mismatches = 0;
    for (const id of ids) {
      const ws = (await admin('GET', `/workspaces/${id}`)).body;
      const got = ws.serverId === servers[1] ? (await execIn(d2.getContainer(ws.containerName), ['sh', '-c', SUMS])).stdout : '';
      if (got !== sums.get(id)) mismatches++;
    }
    console.log(
      JSON.stringify({
        ratio: round(oursSeconds / rawSeconds),
        max_parallel_seen: Math.max(seen, drain.maxParallelSeen),
        checksum_mismatches: mismatches,
        workspaces: WORKSPACES,
        mb_each: MB,
        max_parallel: PARALLEL,
        drain_seconds: round(oursSeconds),
        raw_copy_seconds: round(rawSeconds),
        moved: drain.workspaces.filter((w) => w.phase === 'moved').length,
        hold_healthy_s: HOLD_SECONDS,
        floor_ratio: round((rawSlot + unskippable) / rawSlot),
        cpu_ratio: round(drainCpu / raw.cpuSeconds),
        cpu_floor_ratio: round((raw.cpuSeconds + live.cpuSeconds) / raw.cpuSeconds),
        cpu_floor_verified_ratio: round((raw.cpuSeconds + live.cpuSeconds + verify.cpuSeconds) / raw.cpuSeconds),
        raw_cpu_s: round(raw.cpuSeconds),
        live_steps_cpu_s: round(live.cpuSeconds),
        verify_cpu_s: round(verify.cpuSeconds),
        raw_relay_cpu_s: round(rawRelayCpu),
        drain_cpu_by: drainCpuBy,
        drain_cpu_s: round(drainCpu),
        raw_busy: round(raw.cpuSeconds / (rawSeconds * CORES)),
        drain_busy: round(drainCpu / (oursSeconds * CORES)),
        cores: CORES,
        step_mean_s: steps,
      }),
    );
    await Promise.all(ids.map((id) => user('DELETE', `/workspaces/${id}`)));
  } finally {
    await Promise.all([stop(api), stop(worker)]);
    await Promise.all([cleanEngine(d1), cleanEngine(d2)]).catch(() => undefined);
    await cleanDb();
    await prisma.$disconnect();
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
