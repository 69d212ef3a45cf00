import fs from 'node:fs';
import { ApplicationFailure, heartbeat } from '@temporalio/activity';
import type Docker from 'dockerode';
import type { DaemonFinding } from '../domain/servers';
import { demux } from '../lib/docker-exec';
import { auditEgress } from './egress-audit';
import { auditVolumeDisks } from '../lib/volume-disk';
import type { DockerFleet, EngineEndpoint } from '../lib/docker-fleet';
import { createToolContainer, runTool, toolContainerOptions, type ToolsImage } from '../lib/tools-image';

/** What an engine says about itself: capacity, runtimes and daemon settings. */
export interface EngineFacts {
  serverVersion: string;
  apiVersion: string;
  kernelVersion: string;
  os: string;
  architecture: string;
  cpus: number;
  memoryBytes: number;
  runtimes: string[];
  defaultRuntime: string;
  securityOptions: string[];
  liveRestore: boolean;
  storageDriver: string;
  containers: number;
  gpus: number;
  /** The daemon's `podex.*` labels (`key=value`), where an operator declares capacity (domain/declared-capacity.ts). */
  labels?: string[];
}

export interface DaemonAudit {
  findings: DaemonFinding[];
  /** Size of the filesystem holding the engine's volumes, in GB. */
  diskGb: number;
}

export interface DockerActivityDeps {
  fleet: DockerFleet;
  /** Root filesystem archive of the workspace image, imported where the image is missing. */
  imageArchive?: string;
  /** The image helper containers run from (volume checks, restores, the daemon audit's probe); never a workspace image. */
  tools: ToolsImage;
}

/** Runs a short-lived container to completion and returns its exit code and output; always removes it. */
export async function runProbe(docker: Docker, name: string, opts: Docker.ContainerCreateOptions): Promise<{ code: number; out: string }> {
  await docker.getContainer(name).remove({ force: true }).catch(() => undefined);
  const c = await docker.createContainer({ name, ...opts, Labels: { 'podex.managed': 'true', 'podex.probe': 'true' } });
  try {
    await c.start();
    const { StatusCode } = await c.wait();
    const raw = (await c.logs({ stdout: true, stderr: true })) as unknown as Buffer;
    return { code: StatusCode, out: demux(raw) };
  } finally {
    await c.remove({ force: true }).catch(() => undefined);
  }
}

export function createDockerActivities({ fleet, imageArchive, tools }: DockerActivityDeps) {
  return {
    /** Reads an engine's identity and capacity over its TLS Docker API. */
    async describeEngine(endpoint: EngineEndpoint): Promise<EngineFacts> {
      const docker = fleet.engine(endpoint);
      const [info, version] = await Promise.all([docker.info(), docker.version()]);
      const generic = (info.GenericResources ?? []) as { DiscreteResourceSpec?: { Kind?: string; Value?: number } }[];
      const gpus = generic
        .filter((r) => /gpu/i.test(r.DiscreteResourceSpec?.Kind ?? ''))
        .reduce((n, r) => n + (r.DiscreteResourceSpec?.Value ?? 0), 0);
      return {
        serverVersion: String(info.ServerVersion),
        apiVersion: String(version.ApiVersion),
        kernelVersion: String(info.KernelVersion),
        os: String(info.OperatingSystem),
        architecture: String(info.Architecture),
        cpus: Number(info.NCPU),
        memoryBytes: Number(info.MemTotal),
        runtimes: Object.keys(info.Runtimes ?? {}).sort(),
        defaultRuntime: String(info.DefaultRuntime),
        securityOptions: (info.SecurityOptions ?? []) as string[],
        liveRestore: Boolean(info.LiveRestoreEnabled),
        storageDriver: String(info.Driver),
        containers: Number(info.Containers),
        gpus,
        labels: ((info.Labels ?? []) as string[]).filter((l) => l.startsWith('podex.')),
      };
    },

    /** Makes sure the workspace image is on the engine, importing it through the API when it is not. */
    async ensureImage(endpoint: EngineEndpoint, image: string): Promise<'present' | 'loaded'> {
      const docker = fleet.engine(endpoint);
      try {
        await docker.getImage(image).inspect();
        return 'present';
      } catch (err) {
        if ((err as { statusCode?: number }).statusCode !== 404) throw err;
      }
      if (!imageArchive || !fs.existsSync(imageArchive)) {
        throw ApplicationFailure.nonRetryable(`image ${image} is missing on the engine and no WORKSPACE_IMAGE_ARCHIVE is configured`, 'ImageUnavailable');
      }
      const [repo, tag = 'latest'] = image.split(/:(?=[^/]+$)/);
      const importImage = docker.importImage.bind(docker) as unknown as (
        src: NodeJS.ReadableStream,
        opts: Record<string, unknown>,
      ) => Promise<NodeJS.ReadableStream>;
      const stream = await importImage(fs.createReadStream(imageArchive), {
        repo,
        tag,
        changes: ['CMD ["/bin/sh"]', 'WORKDIR /workspace', 'LABEL podex.image=workspace'],
      });
      await new Promise<void>((resolve, reject) => {
        docker.modem.followProgress(stream, (err: Error | null) => (err ? reject(err) : resolve()), () => heartbeat());
      });
      await docker.getImage(image).inspect();
      return 'loaded';
    },

    /**
     * Audits the daemon against the workspace-server hardening list (gVisor runtime and
     * default, ICC off, userns-remap, no-new-privileges, live-restore, log rotation) and
     * measures the volume filesystem. `probeName` derives from the workflow so a retry
     * replaces its own probe container. The probes run from the tools image (`_image`, the
     * workspace image workflows pass, is unused).
     */
    async auditDaemon(endpoint: EngineEndpoint, _image: string, probeName: string): Promise<DaemonAudit> {
      const docker = fleet.engine(endpoint);
      const info = await docker.info();
      const runtimes = Object.keys(info.Runtimes ?? {});
      const security = (info.SecurityOptions ?? []) as string[];
      const networks = await docker.listNetworks({ filters: { name: ['bridge'] } });
      const defaultBridge = networks.find((n) => n.Name === 'bridge');

      // A probe under runc: gVisor does not report NoNewPrivs in /proc/self/status.
      const volume = `${probeName}-vol`;
      await docker.createVolume({ Name: volume, Labels: { 'podex.managed': 'true', 'podex.probe': 'true' } });
      let probe: { code: number; out: string };
      let logConfig: { Type?: string; Config?: Record<string, string> } = {};
      try {
        // No SecurityOpt of its own: the probe reports whether the daemon sets no-new-privileges by default.
        probe = await runTool(docker, tools, { name: probeName, cmd: ['sh', '-c', 'grep NoNewPrivs /proc/self/status; df -Pk /probe | tail -n 1'], binds: [`${volume}:/probe`], hostConfig: { SecurityOpt: [] } });
        const spare = await createToolContainer(docker, tools, toolContainerOptions(tools, { name: `${probeName}-log`, cmd: ['true'], binds: [] }));
        logConfig = (await spare.inspect()).HostConfig.LogConfig ?? {};
        await spare.remove({ force: true });
      } finally {
        await docker.getContainer(`${probeName}-log`).remove({ force: true }).catch(() => undefined);
        await docker.getVolume(volume).remove().catch(() => undefined);
      }
      if (probe.code !== 0) throw new Error(`audit probe exited ${probe.code}`);
      const noNewPrivs = /NoNewPrivs:\s*1/.test(probe.out);
      const dfFields = probe.out.trim().split('\n').pop()!.trim().split(/\s+/);
      const diskGb = Math.floor(Number(dfFields[1]) / (1024 * 1024));

      const rotated =
        logConfig.Type === 'local' || (['json-file', 'local'].includes(logConfig.Type ?? '') && Boolean(logConfig.Config?.['max-size']));
      const findings: DaemonFinding[] = [
        { check: 'runsc runtime', required: true, ok: runtimes.includes('runsc'), detail: `runtimes: ${runtimes.sort().join(', ')}` },
        { check: 'default runtime runsc', required: false, ok: info.DefaultRuntime === 'runsc', detail: `default: ${info.DefaultRuntime}` },
        {
          check: 'icc disabled',
          required: false,
          ok: !defaultBridge || defaultBridge.Options?.['com.docker.network.bridge.enable_icc'] === 'false',
          detail: defaultBridge ? `default bridge enable_icc=${defaultBridge.Options?.['com.docker.network.bridge.enable_icc'] ?? 'true'}` : 'no default bridge network',
        },
        { check: 'userns-remap', required: false, ok: security.some((s) => s.includes('name=userns')), detail: `security options: ${security.join(', ') || 'none'}` },
        { check: 'no-new-privileges', required: false, ok: noNewPrivs, detail: noNewPrivs ? 'containers start with NoNewPrivs' : 'containers may gain privileges' },
        { check: 'live-restore', required: false, ok: Boolean(info.LiveRestoreEnabled), detail: `live-restore=${Boolean(info.LiveRestoreEnabled)}` },
        { check: 'log rotation', required: false, ok: rotated, detail: `log driver ${logConfig.Type ?? '?'} ${JSON.stringify(logConfig.Config ?? {})}` },
        // A server that cannot give volumes their own disk would leave workspaces unlimited.
        await auditVolumeDisks(docker, tools, `${probeName}-disk`),
        // Workspace egress: the metadata service, the private network and the host stay out of reach.
        ...(await auditEgress(docker, tools, probeName)),
      ];
      return { findings, diskGb };
    },
  };
}
