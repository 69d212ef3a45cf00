import { createDockerActivities, type DockerActivityDeps } from './docker';

export type ActivityDeps = DockerActivityDeps;

/**
 * Every activity the worker registers, built from the process's shared clients.
 * Workflows type their proxies with `ReturnType<typeof createActivities>`.
 */
export function createActivities(deps: ActivityDeps) {
  return {
    ...createDockerActivities(deps),
  };
}

export type Activities = ReturnType<typeof createActivities>;
export type { EngineFacts } from './docker';
