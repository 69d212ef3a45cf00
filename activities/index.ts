import { createDockerActivities, type DockerActivityDeps } from './docker';
import { createHeartbeatActivities, type HeartbeatActivityDeps } from './heartbeat';
import { createServerActivities, type ServerActivityDeps } from './servers';

export type ActivityDeps = DockerActivityDeps & ServerActivityDeps & HeartbeatActivityDeps;

/**
 * Every activity the worker registers, built from the process's shared clients.
 * Workflows type their proxies with `ReturnType<typeof createActivities>`.
 */
export function createActivities(deps: ActivityDeps) {
  return {
    ...createDockerActivities(deps),
    ...createServerActivities(deps),
    ...createHeartbeatActivities(deps),
  };
}

export type Activities = ReturnType<typeof createActivities>;
export type { EngineFacts, DaemonAudit } from './docker';
export type { HeartbeatResult } from './heartbeat';
