/**
 * Backup throughput, against the real stack with the real worker and API processes:
 * BENCH_VOLUMES (8) workspaces on engine-1 holding BENCH_MB (50) MB of random data each are
 * backed up by `POST /backups?wait=true` (volumes only, BENCH_PARALLEL (2) streams at once):
 * each volume read through the engine's TLS Docker API as a tar stream into `restic backup
 * --stdin`, then retention and `restic check` of a 10% subset, as every run does.
 * The baseline, in the same run: raw `restic backup` of the same volume folders, read from
 * the engine's data root on this machine, into a fresh repository of its own.
 *
 * Two more figures put the ratio in context:
 * - `ratio_vs_per_volume_raw`: raw restic making the same snapshots ours makes, one tagged
 *   `restic backup` per volume folder, BENCH_PARALLEL at a time, into a third repository;
 * - `floor_ratio`: the best ratio any orchestrator could reach here with one snapshot per
 *   volume plus retention and a check each run: every restic process first derives the
 *   repository key (scrypt, calibrated by `restic init`; `kdf_s` is measured here), so ours
 *   pays N + 3 key derivations where the single raw call pays one. The floor counts only
 *   those extra derivations (the N - 1 over the parallel lanes, the 3 serial calls), nothing
 *   else ours does.
 *
 * Last line: {"ratio": ours over raw throughput, ...}.
 */
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import type Docker from 'dockerode';
import { mintToken } from '../api/auth';
import { WORKSPACE_MOUNT } from '../domain/container-spec';
import { config } from '../lib/config';
import { execIn } from '../lib/docker-exec';
import { parseEndpoints } from '../lib/docker-fleet';
import { createPrisma } from '../lib/prisma';
import { apiClient, benchFleet, pool, removeLabelled, round, startApi, startWorker, stop, grantBenchUser } from './lib';

const run = promisify(execFile);
const VOLUMES = Number(process.env.BENCH_VOLUMES ?? 8);
const MB = Number(process.env.BENCH_MB ?? 50);
const PARALLEL = Number(process.env.BENCH_PARALLEL ?? 2);
const OWNER = 'bench-backup';

const log = (msg: string, extra: Record<string, unknown> = {}) => console.error(JSON.stringify({ msg, ...extra }));

const cleanEngine = (docker: Docker) => removeLabelled(docker, [`podex.owner=${OWNER}`]);

async function main(): Promise<void> {
  const c = config();
  const prisma = createPrisma(c.DATABASE_URL, 4);
  const fleet = benchFleet(c);
  const [e1] = parseEndpoints(process.env.PODEX_LOCAL_ENGINES);
  const d1 = fleet.engine(e1);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'podex-bench-backup-'));
  const password = path.join(dir, 'password');
  fs.writeFileSync(password, 'bench-backup-password', { mode: 0o600 });
  const oursRepo = path.join(dir, 'ours');
  const rawRepo = path.join(dir, 'raw');
  const perVolumeRepo = path.join(dir, 'per-volume');
  const resticEnv = { RESTIC_PASSWORD_FILE: password, RESTIC_CACHE_DIR: path.join(dir, 'cache') };
  const port = 19000 + Math.floor(Math.random() * 1000);
  const taskQueue = `bench-backup-${process.pid}`;
  const cleanDb = async () => {
    await prisma.workspace.deleteMany({ where: { ownerId: OWNER } });
    await prisma.workspaceServer.deleteMany({ where: { hostname: { startsWith: 'bench-backup-' } } });
  };
  await cleanDb();
  await cleanEngine(d1);

  const env = { ...resticEnv, RESTIC_REPOSITORY: oursRepo, BACKUP_CHECK_SUBSET: '10%' };
  // Both repositories exist before the clock starts (init calibrates its key derivation: seconds).
  for (const repo of [oursRepo, rawRepo, perVolumeRepo]) await run('restic', ['init'], { env: { ...process.env, ...resticEnv, RESTIC_REPOSITORY: repo } });
  const worker = await startWorker(taskQueue, env);
  const api = await startApi(port, { TEMPORAL_TASK_QUEUE: taskQueue, ...env });
  try {
    const base = `http://127.0.0.1:${port}`;
    const admin = apiClient(base, await mintToken(c.JWT_SECRET_KEY, 'bench-admin', 'admin'));
    const user = apiClient(base, await mintToken(c.JWT_SECRET_KEY, OWNER, 'user'));
    await grantBenchUser(admin, OWNER);
    const res = await admin('POST', '/servers', { name: 'bench-backup-1', hostname: `bench-backup-1-${process.pid}.local`, ipAddress: e1.host, dockerPort: e1.port });
    const serverId = res.body.server.id as string;
    for (let i = 0; (await admin('GET', `/servers/${serverId}`)).body.status !== 'active'; i++) {
      if (i > 300) throw new Error('server did not become active');
      await new Promise((r) => setTimeout(r, 200));
    }
    await admin('PATCH', `/servers/${serverId}`, { totalCpu: VOLUMES + 8, totalMemoryMb: (VOLUMES + 8) * 1024, totalDiskGb: (VOLUMES + 8) * 5 });

    const ids: string[] = [];
    for (let i = 0; i < VOLUMES; i++) {
      const w = await user('POST', '/workspaces?wait=true', { name: `backup-${i}`, tier: 'free', server: serverId });
      if (w.status !== 201) throw new Error(`create ${i}: ${w.status} ${JSON.stringify(w.body)}`);
      ids.push(w.body.workspace.id);
      const fill = await execIn(d1.getContainer(w.body.workspace.containerName), [
        'sh',
        '-c',
        `head -c ${MB * 1024 * 1024} /dev/urandom > ${WORKSPACE_MOUNT}/data.bin && mkdir -p ${WORKSPACE_MOUNT}/src && echo ${i} > ${WORKSPACE_MOUNT}/src/id && sync`,
      ]);
      if (fill.code !== 0) throw new Error(`filling workspace ${i}: ${fill.out}`);
    }
    const folders = await Promise.all(ids.map(async (id) => ((await d1.getVolume(`podex-ws-${id}`).inspect()) as { Mountpoint: string }).Mountpoint));
    const bytes = VOLUMES * MB * 1024 * 1024;
    log('volumes ready', { volumes: VOLUMES, mb: MB });

    // Ours: one run through the API, volumes only (the database is not part of the raw baseline).
    const t0 = performance.now();
    const ours = await admin('POST', '/backups?wait=true', { workspaceIds: ids, skipDatabase: true, parallel: PARALLEL });
    const oursSeconds = (performance.now() - t0) / 1000;
    if (ours.status !== 200) throw new Error(`backup: ${ours.status} ${JSON.stringify(ours.body)}`);
    log('ours', { seconds: round(oursSeconds), snapshots: ours.body.backup.snapshots.length });

    // Raw: restic reading the same folders from disk, into its own fresh repository.
    const rawEnv = { ...process.env, ...resticEnv, RESTIC_REPOSITORY: rawRepo };
    const t1 = performance.now();
    await run('restic', ['backup', '--host', 'bench', ...folders], { env: rawEnv, maxBuffer: 64 * 1024 * 1024 });
    const rawSeconds = (performance.now() - t1) / 1000;
    log('raw', { seconds: round(rawSeconds) });

    // Raw, the same snapshots as ours: one tagged call per volume folder, PARALLEL at a time.
    const perVolumeEnv = { ...process.env, ...resticEnv, RESTIC_REPOSITORY: perVolumeRepo };
    const perVolumeSeconds = await pool(folders, PARALLEL, async (folder, i) => {
      await run('restic', ['backup', '--host', 'bench', '--tag', `workspace=${ids[i]}`, folder], { env: perVolumeEnv, maxBuffer: 64 * 1024 * 1024 });
    });
    log('raw per volume', { seconds: round(perVolumeSeconds) });

    // One key derivation: the cost every restic process pays before it does anything.
    const kdf: number[] = [];
    for (let i = 0; i < 3; i++) {
      const t = performance.now();
      await run('restic', ['cat', 'config'], { env: rawEnv });
      kdf.push((performance.now() - t) / 1000);
    }
    const kdfSeconds = kdf.sort((a, b) => a - b)[1];
    const floorSeconds = rawSeconds + ((VOLUMES - 1) * kdfSeconds) / PARALLEL + 3 * kdfSeconds;

    const oursMBps = bytes / 1048576 / oursSeconds;
    const rawMBps = bytes / 1048576 / rawSeconds;
    console.log(
      JSON.stringify({
        ratio: round(oursMBps / rawMBps),
        ours_mb_per_s: round(oursMBps, 1),
        raw_mb_per_s: round(rawMBps, 1),
        ratio_vs_per_volume_raw: round(perVolumeSeconds / oursSeconds),
        floor_ratio: round(rawSeconds / floorSeconds),
        kdf_s: round(kdfSeconds),
        restic_calls: VOLUMES + 3,
        ours_seconds: round(oursSeconds),
        raw_seconds: round(rawSeconds),
        raw_per_volume_seconds: round(perVolumeSeconds),
        volumes: VOLUMES,
        mb_each: MB,
        parallel: PARALLEL,
        includes: 'ours: API → workflow → Docker archive over TLS → restic --stdin, plus retention and a 10% check',
      }),
    );
    await Promise.all(ids.map((id) => user('DELETE', `/workspaces/${id}`)));
  } finally {
    await Promise.all([stop(api), stop(worker)]);
    await cleanEngine(d1).catch(() => undefined);
    await cleanDb();
    await prisma.$disconnect();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
