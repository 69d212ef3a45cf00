import {
  ApplicationFailure,
  CancellationScope,
  type ChildWorkflowHandle,
  ParentClosePolicy,
  condition,
  continueAsNew,
  defineQuery,
  defineSignal,
  isCancellation,
  patched,
  proxyActivities,
  proxyLocalActivities,
  setHandler,
  startChild,
  upsertSearchAttributes,
  workflowInfo,
} from '@temporalio/workflow';
import type { Activities } from '../activities';
import type { Strategy } from '../domain/placement';
import { PHASE, SERVER_ID, WORKFLOW_ID, WORKSPACE_ID } from '../lib/constants';
import { dbActivity, dbLocalActivity } from './activity-options';
import { migrateWorkspaceWorkflow, type MigrationResult } from './migrate-workspace';

const localDb = proxyLocalActivities<Activities>(dbLocalActivity);
const activityDb = proxyActivities<Activities>(dbActivity);

/**
 * The drain's database steps run as ordinary activities. As local activities, a step still
 * running when a child's completion arrived could resolve at another point on replay than
 * it did live, so whether the loop's wait started a timer (the child had already woken it,
 * or not) differed: a nondeterminism error on replay. Histories from before keep theirs.
 */
const DRAIN_STEPS_AS_ACTIVITIES = 'drain-steps-as-activities';
/** Re-checking for a free fleet-wide slot held by someone else: each check adds to the drain's history. */
const SLOT_RECHECK_MS = 5_000;

export interface DrainInput {
  serverId: string;
  /** ISO time; at it, `onDeadline` decides. */
  deadline: string;
  /** Migrations in flight across the whole fleet (every drain counts) while this drain starts one. */
  maxParallel: number;
  /** `force`: what is left is stopped and moved stopped. `abort`: in-flight moves roll back, the server is uncordoned. */
  onDeadline: 'force' | 'abort';
  strategy?: Strategy;
  holdHealthyMs: number;
  /** Attempts per workspace before the drain gives up on it. */
  maxAttempts?: number;
  /** Starts paused: cordoned at once, nothing moves until an operator resumes it. */
  paused?: boolean;
  /**
   * A drain that waits long (for slots held elsewhere, or paused) continues as a new run once
   * its history is this long or the server suggests it, whenever no migration of its own is in
   * flight (its children must not see their parent close). Default 10,000 events.
   */
  continueAsNewAfterEvents?: number;
  /** What a previous run of this drain hands over when it continues as new. */
  carried?: { previousStatus: string; state: DrainState; cancelled: boolean };
}

export interface DrainedWorkspace {
  workspaceId: string;
  phase: 'queued' | 'migrating' | 'moved' | 'retrying' | 'failed' | 'rolled-back';
  attempts: number;
  targetServerId: string | null;
  bytesCopied: number;
  /** Of those, what a retried copy found already on the target and did not send again. */
  resumedBytes?: number;
  error: string | null;
}

export interface DrainState {
  serverId: string;
  phase: string;
  paused: boolean;
  deadline: string;
  onDeadline: 'force' | 'abort';
  deadlinePassed: boolean;
  maxParallel: number;
  /** The most migrations seen in flight across the fleet when this drain started one. */
  maxParallelSeen: number;
  /** Why the drain is not starting more migrations right now; null when it is not held back. */
  blocked: string | null;
  workspaces: DrainedWorkspace[];
}

export const drainStateQuery = defineQuery<DrainState>('drainState');
export const pauseDrainSignal = defineSignal('pause');
export const resumeDrainSignal = defineSignal('resume');
export const cancelDrainSignal = defineSignal('cancel');

/**
 * Empties a server: cordon it, then move each of its workspaces by a migration child
 * workflow, never more in flight across the fleet than `maxParallel` (the slots are counted
 * in PostgreSQL over every drain and migration, not per server). Operators pause, resume and
 * cancel it by signal and follow it by query or in the Temporal UI (server id, phase).
 * At the deadline, `force` moves the rest stopped; `abort` rolls back what is in flight and
 * puts the server back in service. When nothing is left, the server is `drained`.
 */
export async function drainServerWorkflow(input: DrainInput): Promise<DrainState> {
  const maxAttempts = input.maxAttempts ?? 3;
  const state: DrainState = input.carried?.state ?? {
    serverId: input.serverId,
    phase: 'cordoning',
    paused: input.paused ?? false,
    deadline: input.deadline,
    onDeadline: input.onDeadline,
    deadlinePassed: false,
    maxParallel: input.maxParallel,
    maxParallelSeen: 0,
    blocked: null,
    workspaces: [],
  };
  let cancelled = input.carried?.cancelled ?? false;
  setHandler(drainStateQuery, () => state);
  setHandler(pauseDrainSignal, () => void (state.paused = true));
  setHandler(resumeDrainSignal, () => void (state.paused = false));
  setHandler(cancelDrainSignal, () => void (cancelled = true));
  const phase = (p: string) => {
    state.phase = p;
    upsertSearchAttributes([
      { key: PHASE, value: p },
      { key: SERVER_ID, value: input.serverId },
    ]);
  };
  if (!input.carried) phase('cordoning');
  const asActivities = patched(DRAIN_STEPS_AS_ACTIVITIES);
  const db = asActivities ? activityDb : localDb;
  let previousStatus: string;
  if (input.carried) {
    // Continued from an earlier run: the server is cordoned already.
    previousStatus = input.carried.previousStatus;
    phase(state.phase);
  } else ({ previousStatus } = await db.beginDrain(input.serverId));

  const deadlineMs = Date.parse(input.deadline);
  const children = new Map<string, { handle: ChildWorkflowHandle<typeof migrateWorkspaceWorkflow>; scope: CancellationScope }>();
  let changed = 0; // bumped whenever a child ends, to wake the loop

  /** Starts one migration as a child; its result updates the workspace's entry. */
  const launch = async (w: DrainedWorkspace, mode: 'live' | 'stopped') => {
    const workflowId = `${WORKFLOW_ID.migrateWorkspace(w.workspaceId)}-drain-${w.attempts}`;
    const scope = new CancellationScope();
    const handle = await scope.run(() =>
      startChild(migrateWorkspaceWorkflow, {
        workflowId,
        args: [{ workspaceId: w.workspaceId, strategy: input.strategy, drainId: workflowInfo().workflowId, maxParallel: input.maxParallel, mode, holdHealthyMs: input.holdHealthyMs }],
        // A drain that ends for any reason asks its moves to roll back rather than leaving them half-done.
        parentClosePolicy: ParentClosePolicy.REQUEST_CANCEL,
        typedSearchAttributes: [
          { key: WORKSPACE_ID, value: w.workspaceId },
          { key: SERVER_ID, value: input.serverId },
          { key: PHASE, value: 'waiting-for-slot' },
        ],
      }),
    );
    w.phase = 'migrating';
    w.attempts++;
    children.set(w.workspaceId, { handle, scope });
    void scope
      .run(() => handle.result())
      .then(
        (r: MigrationResult) => {
          w.bytesCopied = r.bytesCopied;
          w.resumedBytes = r.resumedBytes ?? 0;
          w.targetServerId = r.targetServerId;
          w.error = r.error ?? null;
          w.phase = r.outcome === 'moved' ? 'moved' : w.attempts >= maxAttempts ? 'failed' : 'retrying';
        },
        (err: Error) => {
          w.error = isCancellation(err) ? 'cancelled' : ((err.cause as Error | undefined)?.message ?? err.message);
          w.phase = w.attempts >= maxAttempts || isCancellation(err) ? 'failed' : 'retrying';
        },
      )
      .finally(() => {
        children.delete(w.workspaceId);
        changed++;
      });
  };

  /** Cancels every move in flight (each rolls back) and waits until they have. */
  const rollBackInFlight = async () => {
    for (const c of children.values()) c.scope.cancel();
    await condition(() => children.size === 0);
  };

  if (!input.carried) phase('migrating');
  for (;;) {
    // Workspaces on the server now: new ones cannot arrive (cordoned), ones still provisioning finish first.
    const present = await db.workspacesOnServer(input.serverId);
    for (const p of present) {
      if (!state.workspaces.some((w) => w.workspaceId === p.id)) {
        state.workspaces.push({ workspaceId: p.id, phase: 'queued', attempts: 0, targetServerId: null, bytesCopied: 0, error: null });
      }
    }
    const presentIds = new Set(present.map((p) => p.id));
    // Moved, or deleted meanwhile: nothing more to do for it.
    for (const w of state.workspaces) if (!presentIds.has(w.workspaceId) && w.phase !== 'migrating' && w.phase !== 'failed') w.phase = 'moved';

    if (cancelled || (state.deadlinePassed && input.onDeadline === 'abort')) {
      phase(cancelled ? 'cancelling' : 'aborting');
      await rollBackInFlight();
      await db.endDrain(input.serverId, 'restored', previousStatus);
      phase(cancelled ? 'cancelled' : 'aborted');
      return state;
    }
    const waiting = state.workspaces.filter((w) => (w.phase === 'queued' || w.phase === 'retrying') && presentIds.has(w.workspaceId));
    const stillProvisioning = present.some((p) => p.status !== 'running' && p.status !== 'stopped' && !children.has(p.id));
    if (waiting.length === 0 && children.size === 0 && !stillProvisioning) {
      if (state.workspaces.some((w) => w.phase === 'failed')) {
        phase('incomplete');
        throw ApplicationFailure.nonRetryable(
          `the drain could not move every workspace: ${state.workspaces
            .filter((w) => w.phase === 'failed')
            .map((w) => `${w.workspaceId}: ${w.error}`)
            .join('; ')}`,
          'DrainIncomplete',
          state,
        );
      }
      await db.endDrain(input.serverId, 'drained', previousStatus);
      phase('drained');
      return state;
    }

    state.blocked = null;
    if (state.paused) state.blocked = 'paused by an operator';
    else if (waiting.length > 0) {
      const next = waiting[0];
      const childId = `${WORKFLOW_ID.migrateWorkspace(next.workspaceId)}-drain-${next.attempts}`;
      // The fleet-wide slot is taken here, for the child (it finds it held under its own id).
      const slot = await db.acquireMigrationSlot({ workspaceId: next.workspaceId, workflowId: childId, drainId: workflowInfo().workflowId, sourceServerId: input.serverId, maxParallel: input.maxParallel });
      if (slot.acquired) {
        state.maxParallelSeen = Math.max(state.maxParallelSeen, slot.inFlight);
        await launch(next, state.deadlinePassed && input.onDeadline === 'force' ? 'stopped' : 'live');
        continue;
      }
      state.blocked = `fleet-wide limit: ${slot.inFlight} migration(s) in flight, at most ${input.maxParallel}`;
    }
    if (!state.deadlinePassed && Date.now() >= deadlineMs - 60_000 && waiting.length > 0) state.blocked = `${state.blocked ? `${state.blocked}; ` : ''}deadline near (${input.deadline})`;

    if (children.size === 0 && (workflowInfo().continueAsNewSuggested || workflowInfo().historyLength >= (input.continueAsNewAfterEvents ?? 10_000))) {
      await continueAsNew<typeof drainServerWorkflow>({ ...input, carried: { previousStatus, state, cancelled } });
    }

    // Wait for a change: a move ends, a signal, the deadline, or a few seconds (a slot may free up elsewhere).
    const seen = changed;
    const recheck = asActivities ? SLOT_RECHECK_MS : 2_000;
    const untilDeadline = state.deadlinePassed ? recheck : Math.max(0, Math.min(recheck, deadlineMs - Date.now()));
    const wasPaused = state.paused;
    await condition(() => changed !== seen || cancelled || state.paused !== wasPaused, untilDeadline);
    if (!state.deadlinePassed && Date.now() >= deadlineMs) {
      state.deadlinePassed = true;
      phase(input.onDeadline === 'force' ? 'deadline-forcing' : 'deadline-aborting');
    }
  }
}
