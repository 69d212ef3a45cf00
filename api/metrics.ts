import { createServer, type Server } from 'node:http';
import client from 'prom-client';
import type { WorkflowClientInterceptor } from '@temporalio/client';
import type { Request } from 'express';
import type { PrismaClient } from '../lib/prisma';

/** One registry per process: the API's request metrics and the workflow starts its Temporal client counts. */
const registry = new client.Registry();
const workflowsStarted = new client.Counter({
  name: 'podex_workflows_started_total',
  help: 'Workflows this process started, by workflow type.',
  labelNames: ['workflow_type'],
  registers: [registry],
});

/** A Temporal client interceptor that counts each workflow start (plain or with a signal) by type. */
export const countWorkflowStarts: WorkflowClientInterceptor = {
  async start(input, next) {
    const runId = await next(input);
    workflowsStarted.inc({ workflow_type: input.workflowType });
    return runId;
  },
  async signalWithStart(input, next) {
    const runId = await next(input);
    workflowsStarted.inc({ workflow_type: input.workflowType });
    return runId;
  },
};

/** Requests a rate limit let through without counting them because Redis did not answer (api/rate-limit.ts fails open). */
export const rateLimitFailOpen = new client.Counter({
  name: 'podex_rate_limit_fail_open_total',
  help: 'Requests a rate limit let through uncounted because Redis was unavailable, by limit (address, user, internal).',
  labelNames: ['limit'],
  registers: [registry],
});

const requestDuration = new client.Histogram({
  name: 'podex_http_request_duration_seconds',
  help: 'API request latency by method, route pattern and status.',
  labelNames: ['method', 'route', 'status'],
  buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
  registers: [registry],
});
client.collectDefaultMetrics({ register: registry, prefix: 'podex_api_' });

/** Records one finished request under its route pattern (never an id), as the request logger sees it. */
export function observeRequest(req: Request, status: number, seconds: number): void {
  const route = req.route ? `${req.baseUrl}${String((req.route as { path: string }).path)}` : 'unmatched';
  requestDuration.observe({ method: req.method, route, status: String(status) }, seconds);
}

/** The whole exposition: this process's registry, then the fleet's figures from PostgreSQL. */
export async function metricsExposition(prisma: PrismaClient): Promise<string> {
  return (await registry.metrics()) + (await metricsText(prisma));
}

/**
 * The orchestrator's Prometheus metrics, read from PostgreSQL on each scrape: every process
 * (and a restarted one) reports the same counters, and a failed backup run raises
 * `podex_backup_runs_total{result="failed"}` for as long as it is on record.
 */
export async function metricsText(prisma: PrismaClient): Promise<string> {
  const [runs, last, servers, workspaces, migrations, capacity] = await Promise.all([
    prisma.$queryRaw<{ status: string; n: bigint }[]>`SELECT status, count(*) AS n FROM backup_runs GROUP BY status`,
    prisma.$queryRaw<{ at: Date | null; bytes: bigint | null }[]>`
      SELECT max(finished_at) AS at, (SELECT bytes FROM backup_runs WHERE status = 'succeeded' ORDER BY finished_at DESC LIMIT 1) AS bytes
        FROM backup_runs WHERE status = 'succeeded'`,
    prisma.$queryRaw<{ status: string; n: bigint }[]>`SELECT status, count(*) AS n FROM workspace_servers GROUP BY status`,
    prisma.$queryRaw<{ status: string; n: bigint }[]>`SELECT status, count(*) AS n FROM workspaces GROUP BY status`,
    prisma.$queryRaw<{ n: bigint }[]>`SELECT count(*) AS n FROM migrations`,
    prisma.$queryRaw<{ cpu_total: number | null; cpu_reserved: number | null; cpu_used: number | null; mem_total: bigint | null; mem_reserved: bigint | null; mem_used: bigint | null; disk_total: bigint | null; disk_reserved: bigint | null; disk_used: bigint | null }[]>`
      SELECT sum(total_cpu)::float8 AS cpu_total, sum(reserved_cpu)::float8 AS cpu_reserved, sum(used_cpu)::float8 AS cpu_used,
             sum(total_memory_mb) AS mem_total, sum(reserved_memory_mb) AS mem_reserved, sum(used_memory_mb) AS mem_used,
             sum(total_disk_gb) AS disk_total, sum(reserved_disk_gb) AS disk_reserved, sum(used_disk_gb) AS disk_used
        FROM workspace_servers WHERE status IN ('active', 'draining')`,
  ]);
  const count = (rows: { status: string; n: bigint }[], status: string) => Number(rows.find((r) => r.status === status)?.n ?? 0);
  // Every known status is reported, at 0 when none: an alert on a status needs its series to exist.
  const byStatus = (rows: { status: string; n: bigint }[], known: string[]) => [...new Set([...known, ...rows.map((r) => r.status)])].map((st) => [st, count(rows, st)] as const);
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
    ...byStatus(servers, ['pending', 'active', 'error', 'unreachable', 'draining', 'drained']).map(([st, n]) => `podex_servers{status="${st}"} ${n}`),
    '# HELP podex_fleet_capacity Capacity of the servers in service (active or draining) by resource and kind (total, reserved, used).',
    '# TYPE podex_fleet_capacity gauge',
    ...(['cpu', 'mem', 'disk'] as const).flatMap((r) =>
      (['total', 'reserved', 'used'] as const).map((k) => `podex_fleet_capacity{resource="${{ cpu: 'cpu_cores', mem: 'memory_mb', disk: 'disk_gb' }[r]}",kind="${k}"} ${Number(capacity[0]?.[`${r}_${k}`] ?? 0)}`),
    ),
    '# HELP podex_migrations_in_flight Workspace migrations holding a fleet-wide slot now.',
    '# TYPE podex_migrations_in_flight gauge',
    `podex_migrations_in_flight ${Number(migrations[0]?.n ?? 0)}`,
    '# HELP podex_workspaces Workspaces by status.',
    '# TYPE podex_workspaces gauge',
    ...byStatus(workspaces, ['pending', 'provisioning', 'running', 'stopped', 'restoring', 'failed', 'deleted']).map(([st, n]) => `podex_workspaces{status="${st}"} ${n}`),
  ];
  return `${lines.join('\n')}\n`;
}

/**
 * /metrics alone, without credentials, for METRICS_ADDRESS: a private address Prometheus
 * scrapes (the compose network), never the public port.
 */
export function metricsServer(prisma: PrismaClient, onError: (err: Error) => void): Server {
  return createServer((req, res) => {
    if (req.method !== 'GET' || new URL(req.url ?? '/', 'http://metrics').pathname !== '/metrics') {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
      return;
    }
    metricsExposition(prisma).then(
      (text) => res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4' }).end(text),
      (err: Error) => {
        onError(err);
        res.writeHead(503, { 'content-type': 'text/plain' }).end('metrics unavailable\n');
      },
    );
  });
}
