import fs from 'node:fs';
import path from 'node:path';
import { DefaultLogger, Runtime, Worker, type NativeConnection, type LogLevel } from '@temporalio/worker';
import type { Logger } from '../lib/logger';
import { createActivities, type ActivityDeps } from '../activities';
import type { BackupDeps } from '../activities/backups';
import type { DataConverter } from '@temporalio/common';
import type { Config } from '../domain/config';
import { resticFromConfig } from '../lib/restic';
import { toolsImage } from '../lib/tools-image';
import { LlmRouter, llmSettings } from '../lib/llm';

const PINO_LEVEL: Record<LogLevel, 'trace' | 'debug' | 'info' | 'warn' | 'error'> = {
  TRACE: 'trace',
  DEBUG: 'debug',
  INFO: 'info',
  WARN: 'warn',
  ERROR: 'error',
};

/**
 * Routes the Temporal SDK's own logs (worker, workflows' `log`, activities' `log`) into pino
 * and, with `metricsAddress` (host:port), serves the SDK's Prometheus metrics there: workflows
 * completed and failed by type, activity latency, task queue polling. Once per process.
 */
export function installRuntimeLogger(logger: Logger, level: LogLevel = 'INFO', metricsAddress?: string): void {
  const sdk = logger.child({ component: 'temporal-sdk' });
  Runtime.install({
    logger: new DefaultLogger(level, ({ level: l, message, meta }) => sdk[PINO_LEVEL[l]](meta ?? {}, message)),
    ...(metricsAddress ? { telemetryOptions: { metrics: { prometheus: { bindAddress: metricsAddress, useSecondsForDurations: true, countersTotalSuffix: true } } } } : {}),
  });
}

/** What the backup activities need from the configuration: the repository, the database to dump, the policy. */
export function backupDeps(c: Config): Pick<BackupDeps, 'restic' | 'databaseUrl' | 'backup' | 'pgDump' | 'tools'> {
  return {
    restic: resticFromConfig(c),
    databaseUrl: c.DATABASE_URL,
    pgDump: c.PG_DUMP_PATH,
    tools: toolsImage(c),
    backup: { retention: { daily: c.BACKUP_KEEP_DAILY, weekly: c.BACKUP_KEEP_WEEKLY, monthly: c.BACKUP_KEEP_MONTHLY }, checkSubset: c.BACKUP_CHECK_SUBSET },
  };
}

/** The LLM router the job activities call through (users' keys are opened inside it only). */
export function llmDeps(c: Config, prisma: ActivityDeps['prisma'], logger: ActivityDeps['logger']): Pick<ActivityDeps, 'llm'> {
  return { llm: new LlmRouter(prisma, llmSettings(c), logger) };
}

/** The Cloudflare client settings (the token stays in the worker process). */
export function cloudflareDeps(c: Config): Pick<ActivityDeps, 'cloudflare'> {
  return { cloudflare: { apiToken: c.CLOUDFLARE_API_TOKEN, baseURL: c.CLOUDFLARE_BASE_URL } };
}

export interface WorkerOptions {
  connection: NativeConnection;
  namespace: string;
  taskQueue: string;
  deps: ActivityDeps;
  /** A prebuilt bundle (production); without it workflows are bundled from source at start. */
  workflowBundlePath?: string;
  maxWorkflowTasks?: number;
  maxActivities?: number;
  /** Encrypts payloads (lib/temporal `temporalDataConverter`): the same as the process's clients use. */
  dataConverter?: DataConverter;
}

/** Builds the orchestrator's worker: every workflow in workflows/, every activity from the factory. */
export async function createWorker(o: WorkerOptions): Promise<Worker> {
  const bundle =
    o.workflowBundlePath && fs.existsSync(o.workflowBundlePath)
      ? { workflowBundle: { codePath: o.workflowBundlePath } }
      : { workflowsPath: path.join(__dirname, '..', 'workflows', 'index.ts') };
  return Worker.create({
    connection: o.connection,
    namespace: o.namespace,
    taskQueue: o.taskQueue,
    dataConverter: o.dataConverter,
    activities: createActivities(o.deps),
    ...bundle,
    // Progress (bytes copied or backed up) reaches operators' queries within seconds, not the SDK's default 24 s.
    maxHeartbeatThrottleInterval: '2 seconds',
    // A burst of workspaces schedules hundreds of tasks at once: pollers follow the server's
    // backlog instead of a fixed ten (which left activities ~11 s in the queue during a 200-create burst).
    workflowTaskPollerBehavior: { type: 'autoscaling', maximum: 50 },
    activityTaskPollerBehavior: { type: 'autoscaling', maximum: 100 },
    ...(o.maxWorkflowTasks ? { maxConcurrentWorkflowTaskExecutions: o.maxWorkflowTasks, maxCachedWorkflows: Math.max(o.maxWorkflowTasks * 2, 400) } : {}),
    ...(o.maxActivities ? { maxConcurrentActivityTaskExecutions: o.maxActivities, maxConcurrentLocalActivityExecutions: o.maxActivities } : {}),
  });
}
