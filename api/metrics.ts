import type { PrismaClient } from '../lib/prisma';

/**
 * The orchestrator's Prometheus metrics, read from PostgreSQL on each scrape: every process
 * (and a restarted one) reports the same counters, and a failed backup run raises
 * `podex_backup_runs_total{result="failed"}` for as long as it is on record.
 */
export async function metricsText(prisma: PrismaClient): Promise<string> {
  const [runs, last, servers, workspaces] = await Promise.all([
    prisma.$queryRaw<{ status: string; n: bigint }[]>`SELECT status, count(*) AS n FROM backup_runs GROUP BY status`,
    prisma.$queryRaw<{ at: Date | null; bytes: bigint | null }[]>`
      SELECT max(finished_at) AS at, (SELECT bytes FROM backup_runs WHERE status = 'succeeded' ORDER BY finished_at DESC LIMIT 1) AS bytes
        FROM backup_runs WHERE status = 'succeeded'`,
    prisma.$queryRaw<{ status: string; n: bigint }[]>`SELECT status, count(*) AS n FROM workspace_servers GROUP BY status`,
    prisma.$queryRaw<{ status: string; n: bigint }[]>`SELECT status, count(*) AS n FROM workspaces GROUP BY status`,
  ]);
  const count = (rows: { status: string; n: bigint }[], status: string) => Number(rows.find((r) => r.status === status)?.n ?? 0);
  const lines = [
    '# HELP podex_backup_runs_total Backup runs by result.',
    '# TYPE podex_backup_runs_total counter',
    ...['succeeded', 'failed'].map((r) => `podex_backup_runs_total{result="${r}"} ${count(runs, r)}`),
    '# HELP podex_backup_failures_total Backup runs that failed.',
    '# TYPE podex_backup_failures_total counter',
    `podex_backup_failures_total ${count(runs, 'failed')}`,
    '# HELP podex_backup_running Backup runs in progress.',
    '# TYPE podex_backup_running gauge',
    `podex_backup_running ${count(runs, 'running')}`,
    '# HELP podex_backup_last_success_timestamp_seconds When the last successful backup run finished.',
    '# TYPE podex_backup_last_success_timestamp_seconds gauge',
    `podex_backup_last_success_timestamp_seconds ${last[0]?.at ? Math.floor(last[0].at.getTime() / 1000) : 0}`,
    '# HELP podex_backup_last_success_bytes Bytes read by the last successful backup run.',
    '# TYPE podex_backup_last_success_bytes gauge',
    `podex_backup_last_success_bytes ${Number(last[0]?.bytes ?? 0)}`,
    '# HELP podex_servers Workspace servers by status.',
    '# TYPE podex_servers gauge',
    ...servers.map((r) => `podex_servers{status="${r.status}"} ${Number(r.n)}`),
    '# HELP podex_workspaces Workspaces by status.',
    '# TYPE podex_workspaces gauge',
    ...workspaces.map((r) => `podex_workspaces{status="${r.status}"} ${Number(r.n)}`),
  ];
  return `${lines.join('\n')}\n`;
}
