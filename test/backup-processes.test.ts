import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { ApplicationFailure } from '@temporalio/common';
import { MockActivityEnvironment } from '@temporalio/testing';
import { NativeConnection, Worker } from '@temporalio/worker';
import { createBackupActivities, type BackupDeps } from '../activities/backups';
import { config } from '../lib/config';
import { createLogger } from '../lib/logger';
import { Restic } from '../lib/restic';
import { temporalConnectionOptions, temporalDataConverter } from '../lib/temporal';
import { toolsImage } from '../lib/tools-image';
import { eventually } from './harness';
import { uniq } from './helpers';
import { temporalForTest } from './temporal-env';

/** Backup activities around a repository in a temporary folder and a given pg_dump. */
function activities(dir: string, pgDump: string) {
  const deps = { prisma: undefined, fleet: undefined } as unknown as Pick<BackupDeps, 'prisma' | 'fleet'>;
  return createBackupActivities({
    ...deps,
    logger: createLogger('silent'),
    restic: new Restic({ repository: path.join(dir, 'repo'), passwordFile: path.join(dir, 'password'), cacheDir: path.join(dir, 'cache') }),
    databaseUrl: config().DATABASE_URL,
    backup: { retention: { daily: 1, weekly: 0, monthly: 0 }, checkSubset: '1/10' },
    pgDump,
    tools: toolsImage(config()),
  });
}

const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};
/** restic processes of one backup run (its tags are on its command line). */
const resticsOf = (run: string) => {
  try {
    return execFileSync('pgrep', ['-f', `restic backup .*run=${run}`]).toString().trim();
  } catch {
    return '';
  }
};

describe('the processes a backup activity starts', () => {
  let dir: string;
  beforeAll(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'podex-backup-procs-'));
    fs.writeFileSync(path.join(dir, 'password'), randomBytes(24).toString('hex'), { mode: 0o600 });
  });
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('a pg_dump that cannot be started fails the activity, not the process', async () => {
    const acts = activities(dir, path.join(dir, 'no-such-pg_dump'));
    const err = await new MockActivityEnvironment().run(acts.backupDatabase, uniq('run')).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ApplicationFailure);
    expect(err).toMatchObject({ type: 'PgDumpUnavailable', nonRetryable: true });
    expect((err as Error).message).toContain('not found');
    // Still here, and able to run another: the worker survived the ENOENT.
    const again = await new MockActivityEnvironment().run(acts.backupDatabase, uniq('run')).catch((e: unknown) => e);
    expect(again).toMatchObject({ type: 'PgDumpUnavailable' });
  });

  it('an activity that times out kills its pg_dump and restic at once, so a retry never runs beside them', async () => {
    const pidFile = path.join(dir, 'pg_dump.pid');
    const slow = path.join(dir, 'slow-pg_dump');
    // A dump that hangs without output (as pg_dump waiting on a lock does).
    fs.writeFileSync(slow, `#!/bin/sh\necho $$ > '${pidFile}'\nexec sleep 600\n`, { mode: 0o755 });
    const t = await temporalForTest('backup-timeout', {}, false);
    const connection = await NativeConnection.connect(temporalConnectionOptions(config()));
    const worker = await Worker.create({
      connection,
      namespace: config().TEMPORAL_NAMESPACE,
      taskQueue: t.taskQueue,
      workflowsPath: path.join(__dirname, 'fixtures', 'timeout-workflows.ts'),
      activities: activities(dir, slow),
      dataConverter: temporalDataConverter(config()),
    });
    const run = uniq('run');
    try {
      await worker.runUntil(async () => {
        const started = Date.now();
        await expect(t.client.workflow.execute('backupUnderTimeout', { taskQueue: t.taskQueue, workflowId: uniq('backup-timeout'), args: [run] })).rejects.toThrow();
        expect(Date.now() - started).toBeLessThan(20_000);
        const pid = Number(fs.readFileSync(pidFile, 'utf8'));
        expect(pid).toBeGreaterThan(1);
        // Gone within a heartbeat or two of the timeout.
        await eventually(async () => !alive(pid) && resticsOf(run) === '', 5_000, 100);
      });
    } finally {
      if (fs.existsSync(pidFile)) {
        const pid = Number(fs.readFileSync(pidFile, 'utf8'));
        if (alive(pid)) process.kill(pid, 'SIGKILL');
      }
      await t.close();
      await connection.close();
    }
  }, 60_000);
});
