/**
 * Restores as workflows, not runbooks: a workspace volume from a snapshot (in place, with the
 * workspace stopped and started again after, or into a new volume beside it) and the database
 * into a new, named database.
 */
import { ApplicationFailure, condition, defineQuery, getExternalWorkflowHandle, proxyActivities, proxyLocalActivities, setHandler, upsertSearchAttributes, workflowInfo } from '@temporalio/workflow';
import type { Activities } from '../activities';
import { workspaceNames } from '../domain/container-spec';
import { PHASE, WORKFLOW_ID } from '../lib/constants';
import { dbLocalActivity, readinessActivity, workspaceDockerActivity } from './activity-options';
import { migrationFinishedSignal, migrationReadySignal, migrationRequestedSignal, type WorkspaceSnapshot } from './migration-signals';

const db = proxyLocalActivities<Activities>(dbLocalActivity);
const docker = proxyActivities<Activities>(workspaceDockerActivity);
const ready = proxyActivities<Activities>(readinessActivity);
const repo = proxyActivities<Activities>({
  startToCloseTimeout: '10 minutes',
  retry: { initialInterval: '2 seconds', backoffCoefficient: 2, maximumInterval: '30 seconds', maximumAttempts: 4, nonRetryableErrorTypes: ['WrongPassword', 'NoRepository', 'SnapshotNotFound'] },
});
/** Restoring data streams for long: it heartbeats, and a retry starts from an emptied volume. */
const data = proxyActivities<Activities>({
  startToCloseTimeout: '6 hours',
  heartbeatTimeout: '1 minute',
  retry: {
    initialInterval: '5 seconds',
    backoffCoefficient: 2,
    maximumInterval: '1 minute',
    maximumAttempts: 4,
    nonRetryableErrorTypes: ['WrongPassword', 'NoRepository', 'SnapshotNotFound', 'InvalidTarget', 'TargetExists', 'ServerNotFoundError'],
  },
});
const cleanup = proxyActivities<Activities>({ startToCloseTimeout: '1 minute', retry: { initialInterval: '2 seconds', maximumAttempts: 10, maximumInterval: '30 seconds' } });

export interface RestoreWorkspaceInput {
  workspaceId: string;
  snapshotId: string;
  mode: 'in-place' | 'new-volume';
  /** The image of the short-lived helper containers (busybox is enough). */
  image: string;
}

export interface RestoreResult {
  snapshotId: string;
  mode: 'in-place' | 'new-volume' | 'database';
  bytes?: number;
  volume?: string;
  serverId?: string;
  status?: string;
  targetDatabase?: string;
  tables?: number;
}

export const restorePhaseQuery = defineQuery<string>('restorePhase');

/** The volume a `new-volume` restore of `snapshotId` makes beside the workspace's own. */
export const restoredVolumeName = (workspaceId: string, snapshotId: string) => `${workspaceNames(workspaceId).volume}-restored-${snapshotId.slice(0, 8)}`;

export async function restoreWorkspaceWorkflow(input: RestoreWorkspaceInput): Promise<RestoreResult> {
  const id = input.workspaceId;
  let current = 'checking-snapshot';
  setHandler(restorePhaseQuery, () => current);
  const phase = (p: string) => {
    current = p;
    upsertSearchAttributes([{ key: PHASE, value: p }]);
  };
  const snap = await repo.findSnapshot(input.snapshotId);
  if (snap.kind !== 'workspace') throw ApplicationFailure.nonRetryable(`snapshot ${input.snapshotId} is a ${snap.kind ?? 'foreign'} snapshot, not a workspace volume`, 'WrongSnapshotKind');
  if (snap.workspaceId !== id) throw ApplicationFailure.nonRetryable(`snapshot ${input.snapshotId} belongs to workspace ${snap.workspaceId}, not ${id}`, 'WrongSnapshotKind');
  const ws = await db.getWorkspace(id);
  if (!ws.serverId) throw ApplicationFailure.nonRetryable(`workspace ${id} is not placed on a server`, 'NotPlaced');

  if (input.mode === 'new-volume') {
    phase('restoring');
    const endpoint = await db.getServerEndpoint(ws.serverId);
    const volume = restoredVolumeName(id, snap.id);
    const r = await data.restoreSnapshotToVolume(endpoint, snap.id, id, volume, input.image, { 'podex.workspace_id': id, 'podex.restored_from': snap.id });
    phase('done');
    return { snapshotId: snap.id, mode: 'new-volume', bytes: r.bytes, volume, serverId: ws.serverId };
  }

  // In place: the workspace's own workflow hands it over, as to a migration, and holds its lifecycle commands.
  const me = workflowInfo().workflowId;
  let handed: WorkspaceSnapshot | undefined;
  setHandler(migrationReadySignal, (s) => {
    handed = s;
  });
  phase('handshake');
  const entity = getExternalWorkflowHandle(WORKFLOW_ID.workspace(id));
  const asked = await entity.signal(migrationRequestedSignal, { migrationWorkflowId: me, purpose: 'restore' }).then(
    () => true,
    () => false,
  );
  if (!asked || !(await condition(() => handed !== undefined, '10 minutes'))) {
    throw ApplicationFailure.nonRetryable('the workspace did not answer the restore request', 'NoHandshake');
  }
  const source = handed!;
  const wasRunning = source.status === 'running';
  if (source.status !== 'running' && source.status !== 'stopped') {
    await entity.signal(migrationFinishedSignal, { status: source.status as 'running' | 'stopped' });
    throw ApplicationFailure.nonRetryable(`a ${source.status} workspace cannot be restored in place`, 'NotRestorable');
  }
  const e = source.endpoint!;
  const staging = `${workspaceNames(id).volume}-restore`;
  let replaced = false;
  try {
    // The record says `restoring` before the container stops: the URL answers "moving", never a dead upstream.
    await db.setWorkspaceStatus(id, 'restoring', `from snapshot ${snap.id.slice(0, 8)}`);
    phase('stopping');
    if (wasRunning) await docker.stopContainer(e, id);
    // The snapshot goes to a staging volume first: if the stream fails, the workspace's own data is untouched.
    phase('restoring');
    const r = await data.restoreSnapshotToVolume(e, snap.id, id, staging, input.image, { 'podex.workspace_id': id, 'podex.restore_staging': 'true' });
    phase('replacing');
    replaced = true;
    await data.replaceVolumeContents(e, id, staging, input.image);
    await cleanup.removeVolumeNamed(e, staging);
    const status = await resume(e, wasRunning, source.diskLimit);
    phase('done');
    return { snapshotId: snap.id, mode: 'in-place', bytes: r.bytes, serverId: source.serverId ?? undefined, status };
  } catch (err) {
    phase('rolling-back');
    if (!replaced) {
      await cleanup.removeVolumeNamed(e, staging).catch(() => undefined);
      try {
        await resume(e, wasRunning, source.diskLimit);
      } catch (again) {
        // The workspace's workflow must get it back whatever happens, or it would wait for ever.
        await db.setWorkspaceStatus(id, 'stopped', `restore rolled back but the workspace did not start: ${(again as Error).message}`);
        await entity.signal(migrationFinishedSignal, { status: 'stopped' });
      }
    } else {
      // The copy into the live volume failed part-way: the snapshot's data waits in the staging volume.
      await db.setWorkspaceStatus(id, 'stopped', `restore failed while replacing data; staging volume ${staging} holds the snapshot`);
      await entity.signal(migrationFinishedSignal, { status: 'stopped' });
    }
    throw err;
  }

  /** Gives the workspace back to its workflow, started again if it ran before. */
  async function resume(endpoint: { host: string; port: number }, run: boolean, diskLimit?: string): Promise<'running' | 'stopped'> {
    if (run) {
      phase('starting');
      const net = await ready.startAndWaitReady(endpoint, id);
      const names = workspaceNames(id);
      await db.recordRunning(id, { containerName: names.container, volumeName: names.volume, networkName: names.network, ...net, diskLimit: diskLimit ?? (await docker.engineDiskLimitSupport(endpoint)).detail });
    } else {
      await db.setWorkspaceStatus(id, 'stopped');
    }
    const status = run ? 'running' : 'stopped';
    await entity.signal(migrationFinishedSignal, { status });
    return status;
  }
}

export interface RestoreDatabaseInput {
  snapshotId: string;
  targetDatabase: string;
}

export async function restoreDatabaseWorkflow(input: RestoreDatabaseInput): Promise<RestoreResult> {
  const snap = await repo.findSnapshot(input.snapshotId);
  if (snap.kind !== 'database') throw ApplicationFailure.nonRetryable(`snapshot ${input.snapshotId} is a ${snap.kind ?? 'foreign'} snapshot, not a database dump`, 'WrongSnapshotKind');
  upsertSearchAttributes([{ key: PHASE, value: 'restoring' }]);
  const r = await data.restoreDatabase(snap.id, input.targetDatabase, `${workflowInfo().workflowId}/${workflowInfo().runId}`);
  upsertSearchAttributes([{ key: PHASE, value: 'done' }]);
  return { snapshotId: snap.id, mode: 'database', targetDatabase: input.targetDatabase, tables: r.tables };
}
