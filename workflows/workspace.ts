import {
  ApplicationFailure,
  allHandlersFinished,
  condition,
  continueAsNew,
  defineQuery,
  defineSignal,
  defineUpdate,
  getExternalWorkflowHandle,
  proxyActivities,
  proxyLocalActivities,
  setHandler,
  upsertSearchAttributes,
  workflowInfo,
} from '@temporalio/workflow';
import type { Activities } from '../activities';
import { TIERS, type TierName } from '../domain/tiers';
import { workspaceNames } from '../domain/container-spec';
import { PHASE } from '../lib/constants';
import { dbLocalActivity, readinessActivity, workspaceDockerActivity } from './activity-options';
import { waitOutMaintenance } from './maintenance';
import { migrationFinishedSignal, migrationReadySignal, migrationRequestedSignal, type MigrationOutcome } from './migration-signals';
import { provisionWorkspace } from './provision-workspace';

const db = proxyLocalActivities<Activities>(dbLocalActivity);
const docker = proxyActivities<Activities>(workspaceDockerActivity);
const ready = proxyActivities<Activities>(readinessActivity);

export interface WorkspaceState {
  workspaceId: string;
  status: 'provisioning' | 'running' | 'stopped' | 'failed' | 'deleted';
  phase: string;
  serverId: string | null;
  endpoint: { host: string; port: number } | null;
  error: string | null;
  /** Read once at provisioning (idle timeout) and kept, with the server's disk-limit support. */
  tier?: string;
  diskLimit?: string;
  /** The migration moving this workspace; lifecycle commands wait for it. */
  migrating?: string | null;
}

export interface WorkspaceInput {
  workspaceId: string;
  defaultImage: string;
  /** Set when continuing as new: the workspace already exists. */
  resume?: WorkspaceState;
}

type Command = 'start' | 'stop' | 'restart' | 'delete' | 'migrate';

export const workspaceStateQuery = defineQuery<WorkspaceState>('workspaceState');
export const startUpdate = defineUpdate<WorkspaceState>('start');
export const stopUpdate = defineUpdate<WorkspaceState>('stop');
export const restartUpdate = defineUpdate<WorkspaceState>('restart');
export const deleteUpdate = defineUpdate<WorkspaceState, [{ keepVolume?: boolean }]>('delete');
/** Agents and the IDE report activity; it resets the idle auto-stop timer. */
export const activitySignal = defineSignal('activity');

/** One workspace's whole life: provisioning (a saga), then start/stop/restart/delete as updates, idle auto-stop. */
export async function workspaceWorkflow(input: WorkspaceInput): Promise<WorkspaceState> {
  const id = input.workspaceId;
  const state: WorkspaceState = input.resume ?? { workspaceId: id, status: 'provisioning', phase: 'starting', serverId: null, endpoint: null, error: null };
  const queue: { cmd: Command; keepVolume?: boolean; migrationWorkflowId?: string; purpose?: string; done: boolean; error?: string }[] = [];
  let migrationOutcome: MigrationOutcome | undefined;
  let lastActivity = Date.now();
  const phase = (p: string) => {
    state.phase = p;
    upsertSearchAttributes([{ key: PHASE, value: p }]);
  };

  setHandler(workspaceStateQuery, () => state);
  setHandler(activitySignal, () => {
    lastActivity = Date.now();
  });
  const enqueue = async (cmd: Command, keepVolume?: boolean) => {
    const ticket = { cmd, keepVolume, done: false as boolean, error: undefined as string | undefined };
    queue.push(ticket);
    await condition(() => ticket.done);
    if (ticket.error) throw ApplicationFailure.nonRetryable(ticket.error, 'LifecycleError');
    return state;
  };
  const busy = () =>
    state.phase === 'restoring' ? 'workspace is being restored from a backup; try again when it is done' : 'workspace is migrating to another server; try again when it has moved';
  const notGone = () => {
    if (state.status === 'deleted' || state.status === 'failed') throw new Error(`workspace is ${state.status}`);
    if (state.migrating) throw new Error(busy());
  };
  setHandler(migrationRequestedSignal, ({ migrationWorkflowId, purpose }) => {
    queue.push({ cmd: 'migrate', migrationWorkflowId, purpose, done: false });
  });
  setHandler(migrationFinishedSignal, (outcome) => {
    migrationOutcome = outcome;
  });
  setHandler(startUpdate, () => enqueue('start'), { validator: notGone });
  setHandler(stopUpdate, () => enqueue('stop'), { validator: notGone });
  setHandler(restartUpdate, () => enqueue('restart'), { validator: notGone });
  setHandler(deleteUpdate, (o) => enqueue('delete', o?.keepVolume), {
    validator: (o) => {
      if (state.status === 'deleted') throw new Error('workspace is already deleted');
      if (state.migrating) throw new Error(busy());
      if (o?.keepVolume !== undefined && typeof o.keepVolume !== 'boolean') throw new Error('keepVolume must be a boolean');
    },
  });

  if (!input.resume) {
    const ws = await db.getWorkspace(id);
    await db.setWorkspaceStatus(id, 'provisioning');
    try {
      state.tier = ws.tier;
      const r = await provisionWorkspace(ws, workflowInfo().workflowId, input.defaultImage, phase);
      Object.assign(state, { status: 'running', serverId: r.serverId, endpoint: { host: r.host, port: r.port }, diskLimit: r.diskLimit });
      phase('running');
    } catch (err) {
      const reason = (err as Error).cause instanceof Error ? ((err as Error).cause as Error).message : (err as Error).message;
      Object.assign(state, { status: 'failed', error: reason });
      phase('failed');
      await db.setWorkspaceStatus(id, 'failed', reason);
      for (const t of queue) Object.assign(t, { done: true, error: `provisioning failed: ${reason}` });
      throw ApplicationFailure.nonRetryable(`provisioning failed: ${reason}`, 'ProvisioningFailed');
    }
  }
  const idleMinutes = TIERS[state.tier as TierName]?.idleTimeoutMinutes ?? null;

  for (;;) {
    const idleMs = idleMinutes && state.status === 'running' ? Math.max(0, lastActivity + idleMinutes * 60_000 - Date.now()) : undefined;
    const woke = idleMs === undefined ? (await condition(() => queue.length > 0), true) : await condition(() => queue.length > 0, idleMs);
    if (!woke && state.status === 'running' && Date.now() - lastActivity >= idleMinutes! * 60_000) {
      queue.push({ cmd: 'stop', done: false });
    }
    const ticket = queue.shift();
    if (ticket) {
      try {
        if (ticket.cmd === 'migrate') await migrate(ticket.migrationWorkflowId!, ticket.purpose === 'restore' ? 'restoring' : 'migrating');
        else await apply(ticket.cmd, ticket.keepVolume);
      } catch (err) {
        ticket.error = (err as Error).message;
      }
      ticket.done = true;
      if (state.status === 'deleted') {
        await condition(allHandlersFinished);
        return state;
      }
    }
    if (workflowInfo().continueAsNewSuggested && queue.length === 0) {
      await condition(allHandlersFinished);
      await continueAsNew<typeof workspaceWorkflow>({ workspaceId: id, defaultImage: input.defaultImage, resume: state });
    }
  }

  /** Hands the workspace to a migration (or an in-place restore) and holds every other command until it is done. */
  async function migrate(migrationWorkflowId: string, label: string): Promise<void> {
    state.migrating = migrationWorkflowId;
    phase(label);
    migrationOutcome = undefined;
    await getExternalWorkflowHandle(migrationWorkflowId).signal(migrationReadySignal, {
      status: state.status,
      serverId: state.serverId,
      endpoint: state.endpoint,
      diskLimit: state.diskLimit,
      defaultImage: input.defaultImage,
    });
    await condition(() => migrationOutcome !== undefined);
    const o = migrationOutcome!;
    if (o.moved) Object.assign(state, { serverId: o.moved.serverId, endpoint: o.moved.endpoint, diskLimit: o.moved.diskLimit });
    state.status = o.status;
    state.migrating = null;
    lastActivity = Date.now();
    phase(state.status);
  }

  async function apply(cmd: Command, keepVolume?: boolean): Promise<void> {
    const e = state.endpoint!;
    if (cmd === 'stop' || cmd === 'restart') {
      phase('stopping');
      // The route is held before the container stops, so the URL says "stopping", never a dead upstream.
      await db.holdRoute(id, 'stopping');
      await undoHoldOnFailure(() => docker.stopContainer(e, id));
      state.status = 'stopped';
      await db.setWorkspaceStatus(id, 'stopped');
    }
    if (cmd === 'start' || cmd === 'restart') {
      await waitOutMaintenance(state.serverId!, (until) => until && phase('waiting-for-maintenance'), { local: true });
      phase('starting');
      await db.holdRoute(id, 'starting');
      const net = await undoHoldOnFailure(() => ready.startAndWaitReady(e, id));
      const names = workspaceNames(id);
      await db.recordRunning(id, { containerName: names.container, volumeName: names.volume, networkName: names.network, ...net, diskLimit: state.diskLimit ?? (await docker.engineDiskLimitSupport(e)).detail });
      state.status = 'running';
      lastActivity = Date.now();
    }
    if (cmd === 'delete') {
      phase('deleting');
      await db.holdRoute(id, 'deleting');
      await undoHoldOnFailure(async () => {
        await docker.removeContainer(e, id);
        await docker.removeNetwork(e, id);
        if (!keepVolume) await docker.removeVolume(e, id);
      });
      await db.releaseCapacity(id);
      state.status = 'deleted';
      await db.setWorkspaceStatus(id, 'deleted', keepVolume ? 'volume kept' : null);
    }
    phase(state.status);
  }

  /** A step that failed leaves the workspace as it was: its route is released from the hold. */
  async function undoHoldOnFailure<T>(step: () => Promise<T>): Promise<T> {
    try {
      return await step();
    } catch (err) {
      await db.holdRoute(id, null);
      throw err;
    }
  }
}
