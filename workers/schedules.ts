import { ScheduleAlreadyRunning, ScheduleOverlapPolicy, type Client, type ScheduleOptions } from '@temporalio/client';
import type { Logger } from '../lib/logger';
import type { Config } from '../domain/config';
import { backupWorkflow, fleetHeartbeatWorkflow, syncModelPricesWorkflow } from '../workflows';

export const HEARTBEAT_SCHEDULE_ID = 'fleet-heartbeat';

export interface HeartbeatScheduleSettings {
  taskQueue: string;
  intervalSeconds: number;
  threshold: number;
  scheduleId?: string;
  serverIds?: string[];
}

export function heartbeatScheduleOptions(s: HeartbeatScheduleSettings): ScheduleOptions {
  return {
    scheduleId: s.scheduleId ?? HEARTBEAT_SCHEDULE_ID,
    spec: { intervals: [{ every: `${s.intervalSeconds}s` }] },
    action: {
      type: 'startWorkflow',
      workflowType: fleetHeartbeatWorkflow,
      workflowId: `${s.scheduleId ?? HEARTBEAT_SCHEDULE_ID}-run`,
      taskQueue: s.taskQueue,
      args: [
        {
          threshold: s.threshold,
          // A server must answer well within one interval, or the round overlaps the next.
          timeoutMs: Math.max(1_000, Math.min(10_000, s.intervalSeconds * 800)),
          ttlSeconds: s.intervalSeconds * s.threshold,
          serverIds: s.serverIds,
        },
      ],
      workflowExecutionTimeout: `${Math.max(60, s.intervalSeconds * 4)}s`,
    },
    policies: { overlap: ScheduleOverlapPolicy.SKIP, catchupWindow: `${Math.max(60, s.intervalSeconds * 2)}s` },
  };
}

/** Creates the fleet heartbeat schedule, or brings an existing one to the configured spec. Idempotent. */
export async function ensureHeartbeatSchedule(client: Client, s: HeartbeatScheduleSettings, logger?: Logger): Promise<void> {
  await ensureSchedule(client, heartbeatScheduleOptions(s), logger);
}

export interface BackupScheduleSettings {
  taskQueue: string;
  scheduleId: string;
  /** Five-field cron, UTC. */
  cron: string;
  catchupWindowMinutes: number;
  parallel: number;
}

/** The daily backup: a cron spec in UTC, never two runs at once, a missed run still made within the catch-up window. */
export function backupScheduleOptions(s: BackupScheduleSettings): ScheduleOptions {
  return {
    scheduleId: s.scheduleId,
    spec: { cronExpressions: [s.cron], timezone: 'UTC' },
    action: {
      type: 'startWorkflow',
      workflowType: backupWorkflow,
      workflowId: `${s.scheduleId}-run`,
      taskQueue: s.taskQueue,
      args: [{ trigger: 'schedule', parallel: s.parallel }],
    },
    policies: { overlap: ScheduleOverlapPolicy.SKIP, catchupWindow: `${s.catchupWindowMinutes}m` },
  };
}

async function ensureSchedule(client: Client, options: ScheduleOptions, logger?: Logger): Promise<void> {
  try {
    await client.schedule.create(options);
    logger?.info({ scheduleId: options.scheduleId }, 'schedule created');
  } catch (err) {
    if (!(err instanceof ScheduleAlreadyRunning)) throw err;
    await client.schedule.getHandle(options.scheduleId).update((prev) => ({ ...prev, spec: options.spec, action: options.action, policies: options.policies }));
    logger?.info({ scheduleId: options.scheduleId }, 'schedule updated');
  }
}

export async function ensureBackupSchedule(client: Client, s: BackupScheduleSettings, logger?: Logger): Promise<void> {
  await ensureSchedule(client, backupScheduleOptions(s), logger);
}

/** Every schedule the configuration asks for, created or brought to its spec: run by the worker at start-up. */
export async function ensureSchedules(client: Client, c: Config, logger?: Logger): Promise<void> {
  await ensureHeartbeatSchedule(
    client,
    { taskQueue: c.TEMPORAL_TASK_QUEUE, intervalSeconds: c.HEARTBEAT_INTERVAL_SECONDS, threshold: c.HEARTBEAT_MISSED_THRESHOLD, scheduleId: c.HEARTBEAT_SCHEDULE_ID },
    logger,
  );
  await ensureBackupSchedule(
    client,
    { taskQueue: c.TEMPORAL_TASK_QUEUE, scheduleId: c.BACKUP_SCHEDULE_ID, cron: c.BACKUP_CRON, catchupWindowMinutes: c.BACKUP_CATCHUP_WINDOW_MINUTES, parallel: c.BACKUP_PARALLEL },
    logger,
  );
  // OpenRouter's prices, daily; the first run at once so a fresh install can bill.
  await ensureSchedule(
    client,
    {
      scheduleId: c.LLM_PRICE_SCHEDULE_ID,
      spec: { cronExpressions: ['17 4 * * *'], timezone: 'UTC' },
      action: { type: 'startWorkflow', workflowType: syncModelPricesWorkflow, workflowId: `${c.LLM_PRICE_SCHEDULE_ID}-run`, taskQueue: c.TEMPORAL_TASK_QUEUE, args: [] },
      policies: { overlap: ScheduleOverlapPolicy.SKIP, catchupWindow: '1 day' },
    },
    logger,
  );
}
