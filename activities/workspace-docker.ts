import { ApplicationFailure, heartbeat } from '@temporalio/activity';
import type Docker from 'dockerode';
import { containerSpec, networkSpec, workspaceLabels, workspaceNames, HTTP_PORT, type ContainerSpecInput } from '../domain/container-spec';
import type { DockerFleet, EngineEndpoint } from '../lib/docker-fleet';

export interface WorkspaceDockerDeps {
  fleet: DockerFleet;
}

const gone = (err: unknown) => (err as { statusCode?: number }).statusCode === 404;
const exists = (err: unknown) => (err as { statusCode?: number }).statusCode === 409;

async function ignoreMissing(p: Promise<unknown>): Promise<boolean> {
  try {
    await p;
    return true;
  } catch (err) {
    if (gone(err)) return false;
    throw err;
  }
}

/** Docker steps of a workspace's life. Each finds its own earlier work by name, so retries are safe. */
export function createWorkspaceDockerActivities({ fleet }: WorkspaceDockerDeps) {
  const engine = (e: EngineEndpoint): Docker => fleet.engine(e);

  return {
    /** Whether the engine's storage driver can enforce a per-container disk limit (overlay2 on xfs with pquota). */
    async engineDiskLimitSupport(endpoint: EngineEndpoint): Promise<{ supported: boolean; detail: string }> {
      const info = await engine(endpoint).info();
      const status = Object.fromEntries((info.DriverStatus ?? []) as [string, string][]);
      const backing = status['Backing Filesystem'] ?? 'unknown';
      const supported = info.Driver === 'overlay2' && backing === 'xfs';
      return { supported, detail: supported ? 'enforced (overlay2 on xfs)' : `not enforced: ${info.Driver} on ${backing} has no project quotas` };
    },

    /** The workspace's own bridge network (ICC off); returns whether this call created it. */
    async ensureNetwork(endpoint: EngineEndpoint, workspaceId: string, ownerId: string, tier: string): Promise<boolean> {
      const docker = engine(endpoint);
      const spec = networkSpec(workspaceId, workspaceLabels(workspaceId, ownerId, tier));
      if (await ignoreMissing(docker.getNetwork(spec.Name).inspect())) return false;
      try {
        await docker.createNetwork(spec);
        return true;
      } catch (err) {
        if (exists(err)) return false;
        throw err;
      }
    },

    /**
     * The workspace's persistent volume. `createdBy` marks a volume this workflow made, so
     * compensation removes only a volume it created (never a user's existing data).
     */
    async ensureVolume(endpoint: EngineEndpoint, workspaceId: string, ownerId: string, tier: string, createdBy: string): Promise<boolean> {
      const docker = engine(endpoint);
      const name = workspaceNames(workspaceId).volume;
      try {
        const v = (await docker.getVolume(name).inspect()) as { Labels?: Record<string, string> };
        return v.Labels?.['podex.created_by'] === createdBy;
      } catch (err) {
        if (!gone(err)) throw err;
      }
      await docker.createVolume({ Name: name, Labels: { ...workspaceLabels(workspaceId, ownerId, tier), 'podex.created_by': createdBy } });
      return true;
    },

    /** Creates the hardened container unless it already exists. */
    async ensureContainer(endpoint: EngineEndpoint, input: ContainerSpecInput): Promise<string> {
      const docker = engine(endpoint);
      const spec = containerSpec(input);
      try {
        return (await docker.getContainer(spec.name).inspect()).Id;
      } catch (err) {
        if (!gone(err)) throw err;
      }
      try {
        return (await docker.createContainer(spec as Docker.ContainerCreateOptions)).id;
      } catch (err) {
        if (exists(err)) return (await docker.getContainer(spec.name).inspect()).Id;
        if (gone(err)) throw ApplicationFailure.nonRetryable(`image ${input.image} is not on the server`, 'ImageNotFound');
        throw err;
      }
    },

    /** Starts the container (if not running) and waits until its health check passes. */
    async startAndWaitReady(endpoint: EngineEndpoint, workspaceId: string, timeoutMs = 60_000): Promise<{ internalIp: string; httpPort: number }> {
      const docker = engine(endpoint);
      const names = workspaceNames(workspaceId);
      const c = docker.getContainer(names.container);
      const state = await c.inspect();
      if (!state.State.Running) {
        try {
          await c.start();
        } catch (err) {
          if ((err as { statusCode?: number }).statusCode !== 304) throw err;
        }
      }
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const i = await c.inspect();
        if (!i.State.Running && i.State.Status === 'exited') throw new Error(`workspace container exited with ${i.State.ExitCode}`);
        if (i.State.Health?.Status === 'healthy') {
          return { internalIp: i.NetworkSettings.Networks[names.network]?.IPAddress ?? '', httpPort: HTTP_PORT };
        }
        if (Date.now() > deadline) throw new Error(`workspace not ready within ${timeoutMs} ms (health: ${i.State.Health?.Status ?? 'none'})`);
        heartbeat();
        await new Promise((r) => setTimeout(r, 100));
      }
    },

    /** Stops the container; a stopped or missing container is already stopped. */
    async stopContainer(endpoint: EngineEndpoint, workspaceId: string): Promise<void> {
      try {
        await engine(endpoint).getContainer(workspaceNames(workspaceId).container).stop({ t: 10 });
      } catch (err) {
        const code = (err as { statusCode?: number }).statusCode;
        if (code !== 304 && code !== 404) throw err;
      }
    },

    async removeContainer(endpoint: EngineEndpoint, workspaceId: string): Promise<boolean> {
      return ignoreMissing(engine(endpoint).getContainer(workspaceNames(workspaceId).container).remove({ force: true, v: false }));
    },

    async removeNetwork(endpoint: EngineEndpoint, workspaceId: string): Promise<boolean> {
      return ignoreMissing(engine(endpoint).getNetwork(workspaceNames(workspaceId).network).remove());
    },

    async removeVolume(endpoint: EngineEndpoint, workspaceId: string): Promise<boolean> {
      return ignoreMissing(engine(endpoint).getVolume(workspaceNames(workspaceId).volume).remove());
    },
  };
}
