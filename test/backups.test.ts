import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import type { ChildProcess } from 'node:child_process';
import { ScheduleOverlapPolicy } from '@temporalio/client';
import { runProbe } from '../activities/docker';
import { manifestOnServer } from '../activities/migration-docker';
import { config } from '../lib/config';
import { toolsImage } from '../lib/tools-image';
import { DISK_LABEL, removeVolumeWithDisk } from '../lib/volume-disk';
import { DEFAULT_RETENTION, snapshotTags } from '../domain/backup';
import { workspaceNames } from '../domain/container-spec';
import { Restic } from '../lib/restic';
import { backupWorkflow } from '../workflows';
import { registerEngines, startHarness, type Harness } from './harness';
import { execIn, localEngines, loopBackingFiles, spawnWorker, terminateOpenWorkflows, uniq } from './helpers';
import { maybeRecordHistory, temporalForTest } from './temporal-env';

const FILES = `cd /workspace && mkdir -p src/deep && echo 'fn main() {}' > src/main.rs && printf 'notes\\n' > src/deep/notes.md &&
  head -c 3145745 /dev/urandom > big.bin && printf '#!/bin/sh\\necho hi\\n' > run.sh && chmod 755 run.sh && ln -s src/main.rs link && : > empty && sync`;
const CHANGE = `cd /workspace && echo changed >> src/main.rs && rm src/deep/notes.md && head -c 1000 /dev/urandom > new.bin && chmod 600 run.sh && sync`;

describe('encrypted backups and restores with restic', () => {
  let h: Harness;
  let dir: string;
  let restic: Restic;
  const suite = uniq('backup');
  const servers: string[] = [];
  const workspaces: string[] = [];
  const databases: string[] = [];

  beforeAll(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'podex-backups-'));
    fs.writeFileSync(path.join(dir, 'password'), randomBytes(24).toString('hex'), { mode: 0o600 });
    const settings = { repository: path.join(dir, 'repo'), passwordFile: path.join(dir, 'password'), cacheDir: path.join(dir, 'cache') };
    restic = new Restic(settings);
    h = await startHarness('backup', { restic: settings }, { overrides: { restic } });
    servers.push(...(await registerEngines(h, 'bk', [0], { suite })));
  });

  afterAll(async () => {
    for (const id of workspaces) await h.call('DELETE', `/workspaces/${id}`);
    await h.deps.prisma.workspace.deleteMany({ where: { id: { in: workspaces } } });
    await h.deps.prisma.workspaceServer.deleteMany({ where: { id: { in: servers } } });
    for (const db of databases) await h.deps.prisma.$executeRawUnsafe(`DROP DATABASE IF EXISTS "${db}" WITH (FORCE)`);
    await h.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  const docker = () => h.deps.fleet.engine(localEngines()[0]);
  const tools = toolsImage({ TOOLS_IMAGE: process.env.TOOLS_IMAGE!, TOOLS_IMAGE_ARCHIVE: process.env.TOOLS_IMAGE_ARCHIVE });
  const manifest = (workspaceId: string, volume?: string) => manifestOnServer(docker(), workspaceId, tools, 'test', volume);

  async function workspaceWithFiles(name: string) {
    const res = await h.call('POST', '/workspaces?wait=true', { token: h.userToken, body: { name, tier: 'free', server: servers[0], constraints: { labels: { suite } } } });
    expect(res.status).toBe(201);
    const ws = res.body.workspace;
    workspaces.push(ws.id);
    expect((await execIn(docker().getContainer(ws.containerName), ['sh', '-c', FILES])).code).toBe(0);
    return ws as { id: string; containerName: string };
  }

  it('backs up a workspace volume and the database, then restores the volume in place and into a new volume, byte for byte', async () => {
    const ws = await workspaceWithFiles('saved');
    const before = await manifest(ws.id);
    expect(before.bytes).toBeGreaterThan(3_000_000);

    const run = await h.call('POST', '/backups?wait=true', { body: { workspaceIds: [ws.id] } });
    expect(run.body.backup?.failures ?? run.body).toEqual([]);
    expect(run.status).toBe(200);
    const volSnap = run.body.backup.snapshots.find((s: { kind: string }) => s.kind === 'workspace');
    expect(volSnap).toMatchObject({ workspaceId: ws.id, serverId: servers[0] });
    expect(volSnap.bytes).toBeGreaterThan(3_000_000);
    expect(run.body.backup.snapshots.find((s: { kind: string }) => s.kind === 'database')).toBeDefined();

    // Listed, tagged with the workspace and its server; the run is on record.
    const listed = await h.call('GET', `/backups?workspaceId=${ws.id}`);
    expect(listed.status).toBe(200);
    expect(listed.body.snapshots).toEqual([expect.objectContaining({ kind: 'workspace', workspaceId: ws.id, serverId: servers[0], run: run.body.workflowId })]);
    expect(listed.body.runs.find((r: { workflowId: string }) => r.workflowId === run.body.workflowId)).toMatchObject({ status: 'succeeded', snapshots: 2 });
    expect(JSON.stringify(listed.body)).not.toContain(fs.readFileSync(path.join(dir, 'password'), 'utf8'));
    const snapshotId = listed.body.snapshots[0].id as string;

    // The files change after the backup…
    expect((await execIn(docker().getContainer(ws.containerName), ['sh', '-c', CHANGE])).code).toBe(0);
    expect((await manifest(ws.id)).digest).not.toBe(before.digest);

    // …a copy into a new volume leaves the workspace alone…
    const copy = await h.call('POST', '/backups/restore?wait=true', { body: { snapshotId, workspaceId: ws.id, mode: 'new-volume' } });
    expect(copy.body).toMatchObject({ restore: { mode: 'new-volume', serverId: servers[0] } });
    expect(copy.status).toBe(200);
    expect((await manifest(ws.id, copy.body.restore.volume)).digest).toBe(before.digest);
    expect((await manifest(ws.id)).digest).not.toBe(before.digest);
    // The new volume is limited as the workspace's own is (finding 5): the same size, a disk of its own.
    const [own, restored] = await Promise.all([workspaceNames(ws.id).volume, copy.body.restore.volume as string].map((v) => docker().getVolume(v).inspect()));
    expect(restored.Labels[DISK_LABEL]).toBe(own.Labels[DISK_LABEL]);
    const df = await runProbe(docker(), `${copy.body.restore.volume}-df`, { Image: config().WORKSPACE_IMAGE, Cmd: ['sh', '-c', 'df -k /data | tail -n 1'], HostConfig: { Runtime: 'runc', NetworkMode: 'none', Binds: [`${copy.body.restore.volume}:/data:ro`] } });
    expect(Number(df.out.trim().split(/\s+/)[1]) * 1024).toBeLessThanOrEqual(Number(own.Labels[DISK_LABEL]));
    expect(loopBackingFiles()).toContain(restored.Mountpoint.replace(/\/_data$/, '/disk.img'));
    expect(await removeVolumeWithDisk(docker(), tools, copy.body.restore.volume)).toBe(true);
    expect(loopBackingFiles()).not.toContain(restored.Mountpoint.replace(/\/_data$/, '/disk.img'));

    // …and in place the workspace is stopped, its data replaced exactly, and started again.
    const res = await h.call('POST', '/backups/restore?wait=true', { body: { snapshotId: snapshotId.slice(0, 8), workspaceId: ws.id } });
    expect(res.body).toMatchObject({ restore: { mode: 'in-place', status: 'running' } });
    expect(res.status).toBe(200);
    const after = await manifest(ws.id);
    expect(after).toEqual(before);
    expect((await docker().getContainer(ws.containerName).inspect()).State.Running).toBe(true);
    expect((await h.call('GET', `/workspaces/${ws.id}`)).body).toMatchObject({ status: 'running', progress: expect.objectContaining({ status: 'running' }) });
    await expect(docker().getVolume(`${workspaceNames(ws.id).volume}-restore`).inspect()).rejects.toMatchObject({ statusCode: 404 });
    // The workspace's lifecycle is its own again.
    expect((await h.call('POST', `/workspaces/${ws.id}/stop`, { token: h.userToken })).status).toBe(200);
    maybeRecordHistory('backup', await h.client.workflow.getHandle(run.body.workflowId).fetchHistory());
    maybeRecordHistory('restore-workspace', await h.client.workflow.getHandle(res.body.workflowId).fetchHistory());
  }, 240_000);

  it('restores the database into a named new database with the same rows, and refuses bad requests naming the field', async () => {
    const actions = [uniq('marker-a'), uniq('marker-b')];
    for (const action of actions) {
      await h.deps.prisma.auditLog.create({ data: { actor: 'backup-test', action, targetType: 'test', targetId: action, after: { n: action, nested: { ok: true } } } });
    }
    const saved = await h.deps.prisma.auditLog.findMany({ where: { action: { in: actions } }, orderBy: { action: 'asc' } });
    const run = await h.call('POST', '/backups?wait=true', { body: { workspaceIds: [] } });
    expect(run.status).toBe(200);
    const snapshotId = run.body.backup.snapshots.find((s: { kind: string }) => s.kind === 'database').snapshotId as string;
    await h.deps.prisma.auditLog.deleteMany({ where: { action: { in: actions } } });

    const target = uniq('podex_restore').replace(/-/g, '_').toLowerCase();
    databases.push(target);
    const res = await h.call('POST', '/backups/restore?wait=true', { body: { snapshotId, targetDatabase: target } });
    expect(res.body).toMatchObject({ restore: { mode: 'database', targetDatabase: target } });
    expect(res.status).toBe(200);
    expect(res.body.restore.tables).toBeGreaterThan(5);

    const url = new URL(process.env.DATABASE_URL!);
    url.pathname = `/${target}`;
    const { createPrisma } = await import('../lib/prisma');
    const restored = createPrisma(url.toString(), 1);
    try {
      const rows = await restored.auditLog.findMany({ where: { action: { in: actions } }, orderBy: { action: 'asc' } });
      expect(rows).toEqual(saved);
      const migrations = async (p: typeof restored) => (await p.$queryRaw<{ migration_name: string }[]>`SELECT migration_name FROM _prisma_migrations ORDER BY 1`).map((m) => m.migration_name);
      expect(await migrations(restored)).toEqual(await migrations(h.deps.prisma));
    } finally {
      await restored.$disconnect();
    }

    // The same target again: it exists now.
    expect((await h.call('POST', '/backups/restore?wait=true', { body: { snapshotId, targetDatabase: target } })).status).toBe(409);
    const bad = await h.call('POST', '/backups/restore', { body: { snapshotId: 'not-hex', targetDatabase: 'Bad-Name' } });
    expect(bad.status).toBe(400);
    expect(bad.body.message).toMatch(/snapshotId/);
    expect(bad.body.message).toMatch(/targetDatabase/);
    const missing = await h.call('POST', '/backups/restore', { body: { snapshotId: 'deadbeef', targetDatabase: 'x_restore' } });
    expect(missing.status).toBe(404);
    expect(missing.body.message).toMatch(/snapshotId/);
    const wrongKind = await h.call('POST', '/backups/restore', { body: { snapshotId, workspaceId: servers[0] } });
    expect(wrongKind.status).toBe(400);
    expect(wrongKind.body.message).toMatch(/not a backup of workspace/);
    expect((await h.call('POST', '/backups/restore', { body: { snapshotId } })).body.message).toMatch(/workspaceId/);
    expect((await h.call('GET', '/backups', { token: h.userToken })).status).toBe(403);
    maybeRecordHistory('restore-database', await h.client.workflow.getHandle(res.body.workflowId).fetchHistory());
  }, 180_000);

  it('retention keeps exactly the policy on a repository holding snapshots of many dates', async () => {
    const repo = new Restic({ repository: path.join(dir, 'retention-repo'), passwordFile: path.join(dir, 'password'), cacheDir: path.join(dir, 'cache') });
    await repo.ensureRepository();
    const days = [
      ...Array.from({ length: 17 }, (_, i) => `2026-11-${String(10 + i).padStart(2, '0')}`), // every day, Nov 10–26 (a Thursday)
      '2026-10-05', '2026-10-12', '2026-10-19', '2026-10-26', '2026-10-31',
      '2026-09-15', '2026-09-30', '2026-08-31', '2026-07-01', '2026-07-31', '2026-06-30', '2026-05-31', '2026-04-30',
    ];
    for (const d of days) await repo.backupStream(Readable.from([Buffer.from(d)]), 'postgres.sql', snapshotTags({ kind: 'database', run: `synthetic-${d}` }), { time: `${d} 03:00:00` });

    // The policy's own worker, on this repository, runs the backup workflow with nothing to save: only retention and the check.
    const t = await temporalForTest('retention', { restic: repo });
    const running = t.worker.run();
    try {
      await t.client.workflow.execute(backupWorkflow, { taskQueue: t.taskQueue, workflowId: uniq('retention'), args: [{ workspaceIds: [], skipDatabase: true }] });
    } finally {
      t.worker.shutdown();
      await running;
      await t.close();
    }
    expect(DEFAULT_RETENTION).toEqual({ daily: 7, weekly: 4, monthly: 6 });
    // daily 7: Nov 20–26. weekly 4 (ISO weeks with a snapshot): Nov 26, Nov 22, Nov 15, Oct 31.
    // monthly 6: Nov 26, Oct 31, Sep 30, Aug 31, Jul 31, Jun 30.
    const expected = ['2026-06-30', '2026-07-31', '2026-08-31', '2026-09-30', '2026-10-31', '2026-11-15', '2026-11-20', '2026-11-21', '2026-11-22', '2026-11-23', '2026-11-24', '2026-11-25', '2026-11-26'];
    const left = (await repo.snapshots()).map((s) => s.time.slice(0, 10)).sort();
    expect(left).toEqual(expected);
  }, 180_000);

  it('a wrong password fails the run loudly and changes nothing; the failure shows in the metrics', async () => {
    const failures = async () => Number(/podex_backup_failures_total (\d+)/.exec((await (await fetch(`${h.url}/metrics`, { headers: { authorization: `Bearer ${h.adminToken}` } })).text()))![1]);
    const failedBefore = await failures();
    const snapshotsBefore = (await restic.snapshots()).map((s) => s.id).sort();
    const wrongFile = path.join(dir, 'wrong-password');
    fs.writeFileSync(wrongFile, 'not the password');
    const wrong = new Restic({ repository: path.join(dir, 'repo'), passwordFile: wrongFile, cacheDir: path.join(dir, 'cache') });

    const t = await temporalForTest('wrong-password', { restic: wrong });
    const running = t.worker.run();
    const workflowId = uniq('backup-wrong');
    try {
      await expect(t.client.workflow.execute(backupWorkflow, { taskQueue: t.taskQueue, workflowId, args: [{}] })).rejects.toMatchObject({
        cause: expect.objectContaining({ message: expect.stringMatching(/wrong password/) }),
      });
    } finally {
      t.worker.shutdown();
      await running;
      await t.close();
    }
    const run = await h.deps.prisma.backupRun.findUnique({ where: { workflowId } });
    expect(run).toMatchObject({ status: 'failed', error: expect.stringMatching(/wrong password or no key found/) });
    expect(run!.finishedAt).not.toBeNull();
    expect(await failures()).toBe(failedBefore + 1);
    expect((await restic.snapshots()).map((s) => s.id).sort()).toEqual(snapshotsBefore);
    // The API says so too, without the password.
    await expect(wrong.snapshots()).rejects.toMatchObject({ kind: 'WrongPassword' });
  }, 120_000);

  it('an unreachable repository fails the run with a clear error that shows no credentials', async () => {
    const remote = new Restic({ repository: 'rest:http://podex:s3cr3t-pass@127.0.0.1:1/podex', passwordFile: path.join(dir, 'password'), cacheDir: path.join(dir, 'cache') });
    const t = await temporalForTest('unreachable', { restic: remote });
    const running = t.worker.run();
    const workflowId = uniq('backup-unreachable');
    try {
      const err = await t.client.workflow.execute(backupWorkflow, { taskQueue: t.taskQueue, workflowId, args: [{ workspaceIds: [], skipDatabase: true }] }).then(
        () => undefined,
        (e: Error & { cause?: Error }) => e,
      );
      expect(err?.cause?.message).toMatch(/backup failed: restic cat on rest:http:\/\/\*\*\*@127\.0\.0\.1:1\/podex: .*connection refused/);
      expect(err?.cause?.message).not.toContain('s3cr3t-pass');
    } finally {
      t.worker.shutdown();
      await running;
      await t.close();
    }
    const run = await h.deps.prisma.backupRun.findUnique({ where: { workflowId } });
    expect(run).toMatchObject({ status: 'failed', error: expect.stringMatching(/connection refused/) });
    expect(run!.error).not.toContain('s3cr3t-pass');
  }, 120_000);

  it('after start-up the worker has created the backup schedule with the configured spec, and the price sync schedule', async () => {
    const scheduleId = uniq('backup-schedule');
    const heartbeatId = uniq('heartbeat-schedule');
    const pricesId = uniq('prices-schedule');
    const taskQueue = uniq('schedules');
    let worker: ChildProcess | undefined;
    try {
      worker = await spawnWorker(taskQueue, {
        ENSURE_SCHEDULES: 'true',
        BACKUP_SCHEDULE_ID: scheduleId,
        BACKUP_CRON: '17 2 * * *',
        BACKUP_CATCHUP_WINDOW_MINUTES: '90',
        BACKUP_PARALLEL: '3',
        HEARTBEAT_SCHEDULE_ID: heartbeatId,
        HEARTBEAT_INTERVAL_SECONDS: '3600',
        LLM_PRICE_SCHEDULE_ID: pricesId,
      });
      const d = await h.client.schedule.getHandle(scheduleId).describe();
      expect(d.spec.timezone).toBe('UTC');
      expect(d.spec.calendars).toEqual([expect.objectContaining({ hour: [{ start: 2, end: 2, step: 1 }], minute: [{ start: 17, end: 17, step: 1 }] })]);
      expect(d.policies.overlap).toBe(ScheduleOverlapPolicy.SKIP);
      expect(d.policies.catchupWindow).toBe(90 * 60 * 1000);
      expect(d.action).toMatchObject({ type: 'startWorkflow', workflowType: 'backupWorkflow', taskQueue, args: [{ trigger: 'schedule', parallel: 3 }] });
      // OpenRouter's price catalog is synced daily by its own schedule.
      const prices = await h.client.schedule.getHandle(pricesId).describe();
      expect(prices.action).toMatchObject({ type: 'startWorkflow', workflowType: 'syncModelPricesWorkflow', taskQueue });
      expect(prices.spec.calendars?.length).toBe(1);
    } finally {
      worker?.kill('SIGTERM');
      await h.client.schedule.getHandle(scheduleId).delete().catch(() => undefined);
      await h.client.schedule.getHandle(heartbeatId).delete().catch(() => undefined);
      await h.client.schedule.getHandle(pricesId).delete().catch(() => undefined);
      // A schedule that fired meanwhile left a run on this queue, which no worker polls now.
      await terminateOpenWorkflows(h.client, taskQueue);
    }
  }, 120_000);
});
