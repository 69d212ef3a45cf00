import {
  ApplicationFailure,
  CancellationScope,
  condition,
  defineQuery,
  getExternalWorkflowHandle,
  log,
  proxyActivities,
  proxyLocalActivities,
  setHandler,
  sleep,
  upsertSearchAttributes,
  workflowInfo,
} from '@temporalio/workflow';
import type { Activities, Reservation, RollbackDetails } from '../activities';
import type { Strategy } from '../domain/placement';
import { TIERS, type TierName } from '../domain/tiers';
import { PHASE, WORKFLOW_ID } from '../lib/constants';
import { dbLocalActivity, readinessActivity, workspaceDockerActivity } from './activity-options';
import { undoAll, type Undo } from './compensate';
import { migrationFinishedSignal, migrationReadySignal, migrationRequestedSignal, type WorkspaceSnapshot } from './migration-signals';

const db = proxyLocalActivities<Activities>(dbLocalActivity);
const docker = proxyActivities<Activities>(workspaceDockerActivity);
const ready = proxyActivities<Activities>(readinessActivity);
/** Removing what a failed move left on its target keeps trying for about ten minutes (the target may be down). */
const cleanup = proxyActivities<Activities>({
  startToCloseTimeout: '30 seconds',
  retry: { initialInterval: '2 seconds', backoffCoefficient: 2, maximumInterval: '30 seconds', maximumAttempts: 24 },
});
/** A copy of many gigabytes takes long: it heartbeats its progress, so a lost worker is noticed in 30 s. */
const copy = proxyActivities<Activities>({
  startToCloseTimeout: '4 hours',
  heartbeatTimeout: '30 seconds',
  retry: { initialInterval: '2 seconds', backoffCoefficient: 2, maximumInterval: '30 seconds', maximumAttempts: 3, nonRetryableErrorTypes: ['NoCapacity'] },
});

export interface MigrateInput {
  workspaceId: string;
  /** A server chosen by the operator; otherwise placement chooses (never the source). */
  targetServerId?: string;
  strategy?: Strategy;
  /** The drain this migration belongs to, if any. */
  drainId?: string;
  /** Migrations in flight across the whole fleet may not exceed this while this one waits for a slot. */
  maxParallel: number;
  /** `live`: a running workspace comes back running. `stopped`: it is moved stopped (a drain's forced deadline). */
  mode: 'live' | 'stopped';
  /** How long the target must stay healthy before the switch. */
  holdHealthyMs: number;
}

export interface MigrationState {
  workspaceId: string;
  phase: string;
  sourceServerId: string | null;
  targetServerId: string | null;
  bytesCopied: number;
  /** Of those, what a retried copy found already whole on the target and did not send again. */
  resumedBytes: number;
  /** Why the migration is not moving on right now (no slot, no capacity, …); null when it is. */
  blocked: string | null;
  error: string | null;
}

export interface MigrationResult {
  workspaceId: string;
  outcome: 'moved' | 'rolled-back';
  sourceServerId: string;
  targetServerId: string | null;
  bytesCopied: number;
  resumedBytes: number;
  files: number;
  digest: string | null;
  status: 'running' | 'stopped';
  error?: string;
}

export const migrationStateQuery = defineQuery<MigrationState>('migrationState');

/**
 * Moves one workspace and its data to another server: slot → handshake with the workspace's
 * workflow → target reserved by placement → source stopped → target network, volume and
 * container → volume copied as a tar stream between the two Docker APIs and verified by
 * checksum on both sides → target started and held healthy → database switched → source
 * removed. Any failure before the switch rolls back: the target's leftovers go, and the
 * workspace runs on the source again, untouched.
 */
export async function migrateWorkspaceWorkflow(input: MigrateInput): Promise<MigrationResult> {
  const id = input.workspaceId;
  const me = workflowInfo().workflowId;
  const state: MigrationState = { workspaceId: id, phase: 'waiting-for-slot', sourceServerId: null, targetServerId: null, bytesCopied: 0, resumedBytes: 0, blocked: null, error: null };
  let snapshot: WorkspaceSnapshot | undefined;
  setHandler(migrationStateQuery, () => state);
  setHandler(migrationReadySignal, (s) => {
    snapshot = s;
  });
  const phase = (p: string) => {
    state.phase = p;
    upsertSearchAttributes([{ key: PHASE, value: p }]);
  };

  const ws = await db.getWorkspace(id);
  const tier = TIERS[ws.tier as TierName];
  if (!ws.serverId || !tier) throw ApplicationFailure.nonRetryable(`workspace ${id} is not placed on a server`, 'NotPlaced');
  state.sourceServerId = ws.serverId;

  const entity = getExternalWorkflowHandle(WORKFLOW_ID.workspace(id));
  const finish = (status: 'running' | 'stopped', moved?: { serverId: string; endpoint: { host: string; port: number }; diskLimit: string }) =>
    entity.signal(migrationFinishedSignal, { status, moved });
  let source: WorkspaceSnapshot | undefined;
  let target: Reservation | undefined;
  const targetLeftovers: Undo[] = [];
  let copied: { bytes: number; files: number; digest: string } | undefined;
  let internalIp = '';
  let diskLimit = '';
  let targetPorts: RollbackDetails['ports'];
  const wasRunning = () => source?.status === 'running';
  try {
    // A fleet-wide slot first, so that a workspace waiting its turn is not held from its user.
    for (;;) {
      const slot = await db.acquireMigrationSlot({ workspaceId: id, workflowId: me, drainId: input.drainId, sourceServerId: ws.serverId, maxParallel: input.maxParallel });
      if (slot.acquired) break;
      state.blocked = `fleet-wide limit: ${slot.inFlight} migration(s) in flight, at most ${input.maxParallel}`;
      await sleep('2 seconds');
    }
    state.blocked = null;

    phase('handshake');
    const asked = await entity.signal(migrationRequestedSignal, { migrationWorkflowId: me }).then(
      () => true,
      () => false, // the workspace's workflow has ended: it was deleted or never provisioned
    );
    if (!asked || !(await condition(() => snapshot !== undefined, '10 minutes'))) {
      throw ApplicationFailure.nonRetryable('the workspace did not answer the migration request', 'NoHandshake');
    }
    source = snapshot!;
    if (source.status !== 'running' && source.status !== 'stopped') throw ApplicationFailure.nonRetryable(`a ${source.status} workspace cannot be migrated`, 'NotMigratable');
    const sourceEndpoint = source.endpoint!;
    phase('reserving-target');
    const c = (ws.constraints ?? {}) as { architecture?: string; region?: string; labels?: Record<string, string>; gpu?: { type?: string; count: number } };
    target = await db.reserveMigrationTarget({
      workspaceId: id,
      sourceServerId: ws.serverId,
      need: { cpu: tier.cpu, memoryMb: tier.memoryMb, diskGb: tier.diskGb },
      strategy: input.strategy ?? (ws.strategy as Strategy),
      serverId: input.targetServerId,
      architecture: c.architecture,
      region: c.region,
      labels: c.labels,
      gpu: c.gpu,
    });
    state.targetServerId = target.serverId;
    const to = { host: target.host, port: target.port };

    const spec = { workspaceId: id, ownerId: ws.ownerId, tier, image: ws.image ?? source.defaultImage, runtime: target.runtime, publishAddress: target.publishAddress, previewPorts: ws.previewPorts, hostCpus: target.hostCpus };
    // The URL answers "moving" from before the source stops until the switch (or the rollback).
    await db.holdRoute(id, 'moving');
    // The target's network, volume and container do not depend on the source: they are made in
    // one activity while the source stops. Both settle before anything else happens (a rollback
    // must not race a step still in flight).
    phase('stopping-source-and-preparing-target');
    targetLeftovers.push({ step: 'volume', run: () => cleanup.removeVolumeCreatedBy(to, id, me) });
    targetLeftovers.push({ step: 'network', run: () => cleanup.removeNetwork(to, id) });
    targetLeftovers.push({ step: 'container', run: () => cleanup.removeContainer(to, id) });
    const [stopped, prepared] = await Promise.allSettled([docker.stopContainer(sourceEndpoint, id), docker.prepareWorkspace(to, spec, me)]);
    for (const r of [stopped, prepared]) if (r.status === 'rejected') throw r.reason;
    diskLimit = (prepared as PromiseFulfilledResult<{ storage: { detail: string } }>).value.storage.detail;

    phase('copying');
    // The platform image (on every server since onboarding) hashes both sides, whatever image the workspace runs.
    const result = await copy.copyVolume(sourceEndpoint, to, id, source.defaultImage);
    state.bytesCopied = result.bytes;
    state.resumedBytes = result.resumedBytes ?? 0;
    copied = { bytes: result.bytes, files: result.source.files, digest: result.source.digest };

    if (input.mode === 'live') {
      phase('starting-target');
      const started = await ready.startAndWaitReady(to, id);
      internalIp = started.internalIp;
      phase('holding-healthy');
      await ready.holdHealthy(to, id, input.holdHealthyMs);
      if (wasRunning()) targetPorts = { httpPort: started.httpPort, sshPort: started.sshPort, publishedPorts: started.publishedPorts };
      else await docker.stopContainer(to, id);
    }
  } catch (err) {
    state.error = (err as Error).cause instanceof Error ? ((err as Error).cause as Error).message : (err as Error).message;
    phase('rolling-back');
    // The user's workspace first: capacity back, the source running again, its workflow told.
    await CancellationScope.nonCancellable(async () => {
      // The source starts again before the route is released to it, with the host ports of this start.
      let back: RollbackDetails = {};
      try {
        if (source && wasRunning()) {
          const started = await ready.startAndWaitReady(source.endpoint!, id);
          back = { ports: { httpPort: started.httpPort, sshPort: started.sshPort, publishedPorts: started.publishedPorts } };
        }
      } finally {
        await db.releaseMigration(id, back);
      }
      // The workspace is handed back only if it was handed over.
      if (source) await finish(wasRunning() ? 'running' : 'stopped');
    });
    // Then the target's leftovers, patiently: a target that went down is cleaned when it returns.
    phase('removing-target-leftovers');
    await undoAll(targetLeftovers, 'migration rollback');
    phase('rolled-back');
    const status = source && !wasRunning() ? 'stopped' : 'running';
    return { workspaceId: id, outcome: 'rolled-back', sourceServerId: ws.serverId, targetServerId: target?.serverId ?? null, bytesCopied: state.bytesCopied, resumedBytes: state.resumedBytes, files: 0, digest: null, status, error: state.error };
  }

  // The point of no return: from here on the workspace lives on the target.
  phase('switching');
  const status = input.mode === 'live' && wasRunning() ? 'running' : 'stopped';
  const sourceEndpoint = source!.endpoint!;
  await db.switchWorkspaceServer(id, { internalIp, diskLimit, status, ports: status === 'running' ? targetPorts : undefined });
  await finish(status, { serverId: target!.serverId, endpoint: { host: target!.host, port: target!.port }, diskLimit });

  phase('removing-source');
  try {
    await docker.removeWorkspaceResources(sourceEndpoint, id);
  } catch (e) {
    log.warn('removing the source copy failed; it is left for the operator', { workspaceId: id, error: (e as Error).message });
  }
  phase('moved');
  return { workspaceId: id, outcome: 'moved', sourceServerId: ws.serverId, targetServerId: target!.serverId, bytesCopied: copied!.bytes, resumedBytes: state.resumedBytes, files: copied!.files, digest: copied!.digest, status };
}
