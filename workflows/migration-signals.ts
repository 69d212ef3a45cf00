/**
 * The handshake between a workspace's own workflow and a migration of it. The migration asks,
 * the workspace finishes what it is doing and answers with where it runs, then holds every
 * lifecycle command until the migration says where it runs now (or that it rolled back).
 * An in-place restore takes the workspace over the same way, and always leaves it where it was.
 */
import { defineSignal } from '@temporalio/workflow';

export interface WorkspaceSnapshot {
  status: string;
  serverId: string | null;
  endpoint: { host: string; port: number } | null;
  diskLimit?: string;
  defaultImage: string;
}

export interface MigrationOutcome {
  /** Where the workspace runs now; absent after a rollback (it runs where it did). */
  moved?: { serverId: string; endpoint: { host: string; port: number }; diskLimit: string };
  status: 'running' | 'stopped';
}

/** `purpose` names what takes the workspace over (a restore uses the same handshake); default a migration. */
export const migrationRequestedSignal = defineSignal<[{ migrationWorkflowId: string; purpose?: 'migration' | 'restore' }]>('migrationRequested');
export const migrationReadySignal = defineSignal<[WorkspaceSnapshot]>('migrationReady');
export const migrationFinishedSignal = defineSignal<[MigrationOutcome]>('migrationFinished');
