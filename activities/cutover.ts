import fs from 'node:fs';
import path from 'node:path';
import { serverEndpoint, type DockerFleet } from '../lib/docker-fleet';
import type { PrismaClient } from '../lib/prisma';
import type { Restic } from '../lib/restic';

export interface CutoverDeps {
  prisma: PrismaClient;
  fleet: DockerFleet;
  restic: Restic;
}

/** One pre-flight item's outcome, as the checklist records it. */
export interface CheckResult {
  ok: boolean;
  detail: string;
  /** What a later step needs from the check (e.g. the backup's database snapshot). */
  data?: Record<string, string>;
}

export interface ProbeResult {
  ok: boolean;
  failures: string[];
}

const MIGRATIONS_DIR = path.join(__dirname, '..', 'prisma', 'migrations');

async function get(url: string, timeoutMs: number): Promise<string | null> {
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(timeoutMs), redirect: 'manual' });
    await res.arrayBuffer().catch(() => undefined);
    return res.status >= 200 && res.status < 400 ? null : `${url}: HTTP ${res.status}`;
  } catch (err) {
    return `${url}: ${(err as Error).name === 'TimeoutError' ? `no answer within ${timeoutMs} ms` : (err as Error).message}`;
  }
}

/** The pre-flight checks and the health probe of a cutover. Each answers; none throws for a failed check. */
export function createCutoverActivities({ prisma, fleet, restic }: CutoverDeps) {
  return {
    /** Every migration in prisma/migrations is applied, and none failed or was rolled back. */
    async checkMigrationsApplied(): Promise<CheckResult> {
      const wanted = fs.readdirSync(MIGRATIONS_DIR, { withFileTypes: true }).filter((d) => d.isDirectory()).map((d) => d.name);
      const rows = await prisma.$queryRaw<{ migration_name: string; finished_at: Date | null; rolled_back_at: Date | null }[]>`
        SELECT migration_name, finished_at, rolled_back_at FROM _prisma_migrations`;
      const done = new Set(rows.filter((r) => r.finished_at && !r.rolled_back_at).map((r) => r.migration_name));
      const missing = wanted.filter((m) => !done.has(m));
      return missing.length ? { ok: false, detail: `not applied: ${missing.join(', ')}` } : { ok: true, detail: `${wanted.length} migrations applied` };
    },

    /** A backup run (its repository check passed) succeeded within `maxAgeHours`, and its database snapshot is in the repository. */
    async checkRecentBackup(maxAgeHours: number): Promise<CheckResult> {
      const since = new Date(Date.now() - maxAgeHours * 3_600_000);
      const runs = await prisma.backupRun.findMany({ where: { status: 'succeeded', finishedAt: { gte: since } }, orderBy: { finishedAt: 'desc' }, take: 20 });
      for (const run of runs) {
        const db = (run.snapshots as { kind: string; snapshotId: string }[]).find((s) => s.kind === 'database');
        if (db && !(await restic.snapshot(db.snapshotId))) return { ok: false, detail: `backup ${run.workflowId}: database snapshot ${db.snapshotId} is not in the repository` };
        if (db) return { ok: true, detail: `backup ${run.workflowId} finished ${run.finishedAt!.toISOString()}, database snapshot ${db.snapshotId}`, data: { snapshotId: db.snapshotId, run: run.workflowId } };
      }
      return { ok: false, detail: `no successful backup with a database snapshot in the last ${maxAgeHours} h` };
    },

    /** Every workspace server (or those with `labels`) is active and answers on its Docker API. */
    async checkServersHealthy(labels?: Record<string, string>): Promise<CheckResult> {
      const servers = await prisma.workspaceServer.findMany({
        where: { status: { notIn: ['drained', 'pending'] } },
      });
      const scoped = servers.filter((s) => !labels || Object.entries(labels).every(([k, v]) => (s.labels as Record<string, string> | null)?.[k] === v));
      if (!scoped.length) return { ok: false, detail: 'no workspace servers' };
      const bad: string[] = [];
      await Promise.all(
        scoped.map(async (s) => {
          if (s.status !== 'active' && s.status !== 'draining') return void bad.push(`${s.name} (${s.id}) is ${s.status}`);
          try {
            await fleet.engine(serverEndpoint(s)).ping();
          } catch (err) {
            bad.push(`${s.name} (${s.id}) does not answer: ${(err as Error).message}`);
          }
        }),
      );
      return bad.length ? { ok: false, detail: bad.sort().join('; ') } : { ok: true, detail: `${scoped.length} servers active and answering` };
    },

    /** GETs each URL; 2xx or 3xx within the timeout is healthy. */
    async probeHealth(urls: string[], timeoutMs = 10_000): Promise<ProbeResult> {
      const failures = (await Promise.all(urls.map((u) => get(u, timeoutMs)))).filter((f): f is string => f !== null);
      return { ok: failures.length === 0, failures };
    },
  };
}
