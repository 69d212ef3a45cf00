/**
 * One backup run (seed Task 5.10): the database, then every workspace volume, into the restic
 * repository; then retention and a check. Started by the daily Temporal Schedule or by
 * `POST /backups`. A run with any failure fails as a workflow, after recording why.
 */
import { ApplicationFailure, defineQuery, proxyActivities, proxyLocalActivities, setHandler, upsertSearchAttributes, workflowInfo } from '@temporalio/workflow';
import type { Activities, SnapshotRecord } from '../activities';
import { PHASE } from '../lib/constants';
import { dbLocalActivity } from './activity-options';

const db = proxyLocalActivities<Activities>(dbLocalActivity);
/** restic against the repository: a lock held by another run or a flaky remote is retried; a wrong password is not. */
const repo = proxyActivities<Activities>({
  startToCloseTimeout: '2 hours',
  heartbeatTimeout: '2 minutes',
  retry: { initialInterval: '5 seconds', backoffCoefficient: 2, maximumInterval: '1 minute', maximumAttempts: 4, nonRetryableErrorTypes: ['WrongPassword', 'NoRepository', 'SnapshotNotFound'] },
});
/** A volume stream heartbeats its bytes: a lost worker is noticed within 30 s and the volume streamed again. */
const stream = proxyActivities<Activities>({
  startToCloseTimeout: '6 hours',
  heartbeatTimeout: '30 seconds',
  retry: { initialInterval: '5 seconds', backoffCoefficient: 2, maximumInterval: '1 minute', maximumAttempts: 3, nonRetryableErrorTypes: ['WrongPassword', 'NoRepository', 'ServerNotFoundError'] },
});

export interface BackupInput {
  trigger?: 'schedule' | 'api';
  /** Only these workspaces (default: every workspace with a volume). */
  workspaceIds?: string[];
  /** Workspace volumes streamed at once. */
  parallel?: number;
  /** Skip the database dump (a volume-only run). */
  skipDatabase?: boolean;
}

export interface BackupState {
  phase: string;
  snapshots: SnapshotRecord[];
  skipped: { workspaceId: string; reason: string }[];
  failures: string[];
  volumesTotal: number;
  volumesDone: number;
}

export const backupStateQuery = defineQuery<BackupState>('backupState');

const reason = (err: unknown) => {
  const e = err as Error & { cause?: Error };
  return e.cause?.message ?? e.message;
};

export async function backupWorkflow(input: BackupInput = {}): Promise<BackupState> {
  const me = workflowInfo().workflowId;
  const state: BackupState = { phase: 'starting', snapshots: [], skipped: [], failures: [], volumesTotal: 0, volumesDone: 0 };
  setHandler(backupStateQuery, () => state);
  const phase = (p: string) => {
    state.phase = p;
    upsertSearchAttributes([{ key: PHASE, value: p }]);
  };

  await db.beginBackupRun(me, input.trigger ?? 'api');
  try {
    phase('opening-repository');
    await repo.ensureResticRepository();
    if (!input.skipDatabase) {
      phase('database');
      try {
        state.snapshots.push(await repo.backupDatabase(me));
      } catch (err) {
        state.failures.push(`database: ${reason(err)}`);
      }
    }
    phase('volumes');
    const targets = await db.listBackupTargets(input.workspaceIds);
    state.volumesTotal = targets.length;
    const queue = [...targets];
    const lane = async () => {
      for (let t = queue.shift(); t; t = queue.shift()) {
        try {
          const r = await stream.backupWorkspaceVolume(me, t.workspaceId);
          if ('skipped' in r) state.skipped.push({ workspaceId: r.workspaceId, reason: r.skipped });
          else state.snapshots.push(r);
        } catch (err) {
          state.failures.push(`workspace ${t.workspaceId} on server ${t.serverId}: ${reason(err)}`);
        }
        state.volumesDone++;
      }
    };
    await Promise.all(Array.from({ length: Math.max(1, Math.min(input.parallel ?? 2, targets.length)) }, lane));
    // Retention only ever drops snapshots older than the policy keeps, so it runs even after a failed volume.
    phase('retention');
    await repo.applyRetention();
    phase('checking');
    await repo.checkRepository();
  } catch (err) {
    state.failures.push(reason(err));
  }

  if (state.failures.length) {
    phase('failed');
    const error = state.failures.join('; ');
    await db.finishBackupRun(me, { status: 'failed', snapshots: state.snapshots, error });
    throw ApplicationFailure.nonRetryable(`backup failed: ${error}`, 'BackupFailed');
  }
  phase('succeeded');
  await db.finishBackupRun(me, { status: 'succeeded', snapshots: state.snapshots });
  return state;
}
