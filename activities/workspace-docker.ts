import { ApplicationFailure, Context, heartbeat } from '@temporalio/activity';
import type Docker from 'dockerode';
import { containerSpec, hostPortsFrom, networkSpec, workspaceLabels, workspaceNames, READY_PROBE, SSH_PORT, type ContainerSpecInput } from '../domain/container-spec';
import { execIn } from '../lib/docker-exec';
import { DockerFleet, type EngineEndpoint } from '../lib/docker-fleet';
import type { ToolsImage } from '../lib/tools-image';
import { attachVolumeDisk, removeVolumeWithDisk, DISK_LABEL, VolumeDiskUnsupportedError } from '../lib/volume-disk';
import { TIERS, type TierName } from '../domain/tiers';
import { within } from '../lib/timeout';

const STORAGE_FACTS_TTL_MS = 5 * 60_000;
/** One readiness probe; a busy gVisor sandbox can be slow to run an exec, never this slow. */
const PROBE_TIMEOUT_MS = 5_000;

/** Runs the readiness probe once in the workspace's container; a probe that errs or hangs counts as failed. */
export function probeReady(c: Docker.Container): Promise<{ code: number; out: string }> {
  return within(execIn(c, READY_PROBE), PROBE_TIMEOUT_MS, 'readiness probe').catch((err: Error) => ({ code: -1, out: err.message }));
}

/** A started workspace: its address on its own network and the host ports Docker chose this time. */
export interface StartedWorkspace {
  internalIp: string;
  httpPort: number;
  sshPort: number | null;
  publishedPorts: Record<string, number>;
}

export interface WorkspaceDockerDeps {
  fleet: DockerFleet;
  /** The platform's tools image: volume disk helpers run from it. */
  tools: ToolsImage;
}

const GIB = 1024 ** 3;

/** This activity's attempt (1 when called outside an activity, as tools and tests do). */
function attempt(): number {
  try {
    return Context.current().info.attempt;
  } catch {
    return 1;
  }
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

/** Every network named exactly `name` (the engine's name filter also matches names that merely contain it). */
async function networksNamed(docker: Docker, name: string): Promise<Docker.NetworkInspectInfo[]> {
  return (await docker.listNetworks({ filters: { name: [name] } })).filter((n) => n.Name === name);
}

/** Keeps the oldest network of the name and removes the rest (two creates in flight at once can both succeed). */
async function removeTwins(docker: Docker, name: string): Promise<void> {
  const twins = await networksNamed(docker, name);
  if (twins.length < 2) return;
  const [, ...newer] = twins.sort((a, b) => a.Created.localeCompare(b.Created));
  for (const n of newer) await ignoreMissing(docker.getNetwork(n.Id).remove());
}

/** Docker steps of a workspace's life. Each finds its own earlier work by name, so retries are safe. */
export function createWorkspaceDockerActivities({ fleet, tools }: WorkspaceDockerDeps) {
  const engine = (e: EngineEndpoint): Docker => fleet.engine(e);
  // The storage driver does not change under a running engine: `docker info` is slow and
  // costly on a busy engine, so its answer is kept for a few minutes per engine.
  const storage = new Map<string, { at: number; value: Promise<{ supported: boolean; detail: string }> }>();

  const steps = {
    /** Whether the engine's storage driver can enforce a per-container disk limit (overlay2 on xfs with pquota). */
    async engineDiskLimitSupport(endpoint: EngineEndpoint): Promise<{ supported: boolean; detail: string }> {
      const key = DockerFleet.key(endpoint);
      const cached = storage.get(key);
      if (cached && Date.now() - cached.at < STORAGE_FACTS_TTL_MS) return cached.value;
      const value = engine(endpoint)
        .info()
        .then((info) => {
          const status = Object.fromEntries((info.DriverStatus ?? []) as [string, string][]);
          const backing = status['Backing Filesystem'] ?? 'unknown';
          const supported = info.Driver === 'overlay2' && backing === 'xfs';
          return { supported, detail: supported ? 'enforced (overlay2 on xfs)' : `not enforced: ${info.Driver} on ${backing} has no project quotas` };
        });
      storage.set(key, { at: Date.now(), value });
      value.catch(() => storage.delete(key));
      return value;
    },

    /**
     * The workspace's own bridge network (ICC off); returns whether this call created it.
     * The engine refuses a duplicate name with 409 ("exists"), but only by a check that two
     * creates in flight at once can both pass (an attempt that timed out on a busy engine and
     * its retry): then the newer twins are removed, or the container's network would be
     * ambiguous.
     */
    async ensureNetwork(endpoint: EngineEndpoint, workspaceId: string, ownerId: string, tier: string): Promise<boolean> {
      const docker = engine(endpoint);
      let created = false;
      try {
        await docker.createNetwork(networkSpec(workspaceId, workspaceLabels(workspaceId, ownerId, tier)));
        created = true;
      } catch (err) {
        if (!exists(err)) throw err;
      }
      // A first attempt that made the network had no earlier attempt to race: nothing to look for.
      if (created && attempt() === 1) return true;
      await removeTwins(docker, workspaceNames(workspaceId).network);
      return created;
    },

    /**
     * The workspace's persistent volume, on a filesystem of its own of the tier's disk size
     * (see lib/volume-disk.ts): a write past it fails with ENOSPC inside the workspace.
     * `createdBy` marks a volume this workflow made, so compensation removes only a volume it
     * created (never a user's existing data). `diskBytes` overrides the tier's size (tests).
     */
    async ensureVolume(endpoint: EngineEndpoint, workspaceId: string, ownerId: string, tier: string, createdBy: string, diskBytes?: number): Promise<boolean> {
      const docker = engine(endpoint);
      const volume = docker.getVolume(workspaceNames(workspaceId).volume);
      const t = TIERS[tier as TierName];
      if (!t && !diskBytes) throw ApplicationFailure.nonRetryable(`unknown tier ${tier}`, 'BadRequest');
      const bytes = diskBytes ?? t.diskGb * GIB;
      // Creating a volume that exists returns the existing one, so its labels tell who made it.
      await docker.createVolume({ Name: volume.name, Labels: { ...workspaceLabels(workspaceId, ownerId, tier), 'podex.created_by': createdBy, [DISK_LABEL]: String(bytes) } });
      const v = (await volume.inspect()) as { Labels?: Record<string, string> };
      try {
        await attachVolumeDisk(docker, tools, volume.name, Number(v.Labels?.[DISK_LABEL] ?? bytes));
      } catch (err) {
        if (err instanceof VolumeDiskUnsupportedError) throw ApplicationFailure.nonRetryable(err.message, err.name);
        throw err;
      }
      return v.Labels?.['podex.created_by'] === createdBy;
    },

    /** Creates the hardened container unless it already exists; SSH is published when the image serves it. */
    async ensureContainer(endpoint: EngineEndpoint, input: ContainerSpecInput): Promise<string> {
      const docker = engine(endpoint);
      // The image says whether it serves SSH and which user it runs as.
      let img: Docker.ImageInspectInfo;
      try {
        img = await docker.getImage(input.image).inspect();
      } catch (err) {
        if (!gone(err)) throw err;
        throw ApplicationFailure.nonRetryable(`image ${input.image} is not on the server`, 'ImageNotFound');
      }
      const ssh = input.ssh ?? `${SSH_PORT}/tcp` in (img.Config?.ExposedPorts ?? {});
      const spec = containerSpec({ ...input, ssh, imageUser: input.imageUser ?? img.Config?.User });
      try {
        return (await docker.createContainer(spec as Docker.ContainerCreateOptions)).id;
      } catch (err) {
        if (exists(err)) return (await docker.getContainer(spec.name).inspect()).Id;
        if (gone(err) && /no such image/i.test((err as Error).message)) throw ApplicationFailure.nonRetryable(`image ${input.image} is not on the server`, 'ImageNotFound');
        throw err;
      }
    },

    /**
     * Starts the container (if not running) and waits until it is ready: the readiness probe,
     * run through the Docker API right away and every 100 ms, or Docker's own health check
     * (whichever says so first) — not Docker's slow health interval.
     */
    async startAndWaitReady(endpoint: EngineEndpoint, workspaceId: string, timeoutMs = 60_000): Promise<StartedWorkspace> {
      const docker = engine(endpoint);
      const names = workspaceNames(workspaceId);
      const c = docker.getContainer(names.container);
      // A busy engine can take longer than the heartbeat timeout to start a sandbox: keep
      // telling the server this attempt is alive while the start call is in flight.
      const beat = setInterval(() => heartbeat({ starting: true }), 2_000);
      try {
        await c.start();
      } catch (err) {
        if ((err as { statusCode?: number }).statusCode === 304) {
          // already running
        } else if (/is ambiguous/.test((err as Error).message)) {
          // The engine resolves the network's name at start: a create still in flight when the network step looked made a twin.
          await removeTwins(docker, names.network);
          await c.start();
        } else throw err;
      } finally {
        clearInterval(beat);
      }
      const deadline = Date.now() + timeoutMs;
      for (let attempt = 0; ; attempt++) {
        const probe = await probeReady(c);
        const i = await c.inspect();
        if (!i.State.Running && i.State.Status === 'exited') throw new Error(`workspace container exited with ${i.State.ExitCode}`);
        if (probe.code === 0 || i.State.Health?.Status === 'healthy') {
          // Host ports are Docker's choice at each start: what the route needs is read here, every time.
          const ports = hostPortsFrom(i.NetworkSettings.Ports as Parameters<typeof hostPortsFrom>[0]);
          if (!ports.httpPort) throw ApplicationFailure.nonRetryable('the workspace container publishes no HTTP port (made before ports were published?)', 'NotPublished');
          return { internalIp: i.NetworkSettings.Networks[names.network]?.IPAddress ?? '', httpPort: ports.httpPort, sshPort: ports.sshPort, publishedPorts: ports.publishedPorts };
        }
        if (Date.now() > deadline) throw new Error(`workspace not ready within ${timeoutMs} ms (probe: ${probe.code === -1 ? probe.out : `exit ${probe.code}`}; health: ${i.State.Health?.Status ?? 'none'})`);
        heartbeat({ attempt });
        // 100 ms, then slower: every probe is an exec in the sandbox, which costs the server CPU.
        await new Promise((r) => setTimeout(r, Math.min(1_000, 100 * 2 ** attempt)));
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

    /** Removes the workspace's network (every one of that name, by id: a name with twins is ambiguous to the engine). */
    async removeNetwork(endpoint: EngineEndpoint, workspaceId: string): Promise<boolean> {
      const docker = engine(endpoint);
      const named = await networksNamed(docker, workspaceNames(workspaceId).network);
      for (const n of named) await ignoreMissing(docker.getNetwork(n.Id).remove());
      return named.length > 0;
    },

    /** Removes the volume and releases its disk (unmounted, its loop device freed, its image deleted with the volume). */
    async removeVolume(endpoint: EngineEndpoint, workspaceId: string): Promise<boolean> {
      return removeVolumeWithDisk(engine(endpoint), tools, workspaceNames(workspaceId).volume);
    },

    /** Removes the volume only if `createdBy` made it: a user's existing data is never touched. */
    async removeVolumeCreatedBy(endpoint: EngineEndpoint, workspaceId: string, createdBy: string): Promise<boolean> {
      const volume = engine(endpoint).getVolume(workspaceNames(workspaceId).volume);
      try {
        const v = (await volume.inspect()) as { Labels?: Record<string, string> };
        if (v.Labels?.['podex.created_by'] !== createdBy) return false;
      } catch (err) {
        if (gone(err)) return false;
        throw err;
      }
      return removeVolumeWithDisk(engine(endpoint), tools, volume.name);
    },
  };

  /**
   * The network, the volume and the engine's storage facts, asked for at once (they do not
   * depend on each other). Every part is idempotent, so a retry finds what an earlier attempt made.
   */
  const prepareWorkspaceResources = async (endpoint: EngineEndpoint, workspaceId: string, ownerId: string, tier: string, createdBy: string) => {
    const [networkCreated, volumeCreated, storage] = await Promise.all([
      steps.ensureNetwork(endpoint, workspaceId, ownerId, tier),
      steps.ensureVolume(endpoint, workspaceId, ownerId, tier, createdBy),
      steps.engineDiskLimitSupport(endpoint),
    ]);
    return { networkCreated, volumeCreated, storage };
  };

  return {
    ...steps,
    prepareWorkspaceResources,

    /**
     * A whole workspace on one server in one activity, for a migration's target: network,
     * volume and storage facts at once, then the container (its disk limit depends on them).
     */
    async prepareWorkspace(endpoint: EngineEndpoint, input: Omit<ContainerSpecInput, 'diskLimitSupported'>, createdBy: string) {
      const { storage } = await prepareWorkspaceResources(endpoint, input.workspaceId, input.ownerId, input.tier.name, createdBy);
      const containerId = await steps.ensureContainer(endpoint, { ...input, diskLimitSupported: storage.supported });
      return { storage, containerId };
    },

    /** Removes a workspace's container, then its network and volume (at once); what is missing is already removed. */
    async removeWorkspaceResources(endpoint: EngineEndpoint, workspaceId: string): Promise<void> {
      await steps.removeContainer(endpoint, workspaceId);
      await Promise.all([steps.removeNetwork(endpoint, workspaceId), steps.removeVolume(endpoint, workspaceId)]);
    },
  };
}
