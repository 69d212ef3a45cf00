import { createBackupActivities, type BackupDeps } from './backups';
import { createCloudflareActivities, type CloudflareDeps } from './cloudflare';
import { createCutoverActivities } from './cutover';
import { createLlmActivities, type LlmDeps } from './llm';
import { createDockerActivities, type DockerActivityDeps } from './docker';
import { createMigrationDockerActivities } from './migration-docker';
import { createMigrationActivities } from './migrations';
import { createHeartbeatActivities, type HeartbeatActivityDeps } from './heartbeat';
import { createReservationActivities, type ReservationDeps } from './reservations';
import { createServerActivities, type ServerActivityDeps } from './servers';
import { createWorkspaceDockerActivities } from './workspace-docker';
import { createWorkspaceActivities } from './workspaces';

export type ActivityDeps = DockerActivityDeps & ServerActivityDeps & HeartbeatActivityDeps & ReservationDeps & BackupDeps & CloudflareDeps & LlmDeps;

/**
 * Every activity the worker registers, built from the process's shared clients.
 * Workflows type their proxies with `ReturnType<typeof createActivities>`.
 */
export function createActivities(deps: ActivityDeps) {
  return {
    ...createDockerActivities(deps),
    ...createServerActivities(deps),
    ...createHeartbeatActivities(deps),
    ...createReservationActivities(deps),
    ...createWorkspaceDockerActivities(deps),
    ...createWorkspaceActivities(deps),
    ...createMigrationActivities(deps),
    ...createMigrationDockerActivities(deps),
    ...createBackupActivities(deps),
    ...createCloudflareActivities(deps),
    ...createCutoverActivities(deps),
    ...createLlmActivities(deps),
  };
}

export type Activities = ReturnType<typeof createActivities>;
export type { EngineFacts, DaemonAudit } from './docker';
export type { HeartbeatResult } from './heartbeat';
export type { Reservation, ReserveRequest } from './reservations';
export type { WorkspaceRecord } from './workspaces';
export type { CopyResult, Manifest } from './migration-docker';
export type { RollbackDetails, SwitchDetails } from './migrations';
export type { StartedWorkspace } from './workspace-docker';
export type { BackupTarget, SnapshotInfo, SnapshotRecord } from './backups';
export type { CheckResult, ProbeResult } from './cutover';
