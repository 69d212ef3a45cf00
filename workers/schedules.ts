import { ScheduleAlreadyRunning, ScheduleOverlapPolicy, type Client, type ScheduleOptions } from '@temporalio/client';
import type { Logger } from '../lib/logger';
import { fleetHeartbeatWorkflow } from '../workflows';

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
  const options = heartbeatScheduleOptions(s);
  try {
    await client.schedule.create(options);
    logger?.info({ scheduleId: options.scheduleId, every: s.intervalSeconds }, 'heartbeat schedule created');
  } catch (err) {
    if (!(err instanceof ScheduleAlreadyRunning)) throw err;
    await client.schedule.getHandle(options.scheduleId).update((prev) => ({ ...prev, spec: options.spec, action: options.action, policies: options.policies }));
    logger?.info({ scheduleId: options.scheduleId, every: s.intervalSeconds }, 'heartbeat schedule updated');
  }
}
