/**
 * The platform's tools image and the helper containers made from it on workspace servers
 * (volume checks, listings, restores, probes). Helpers never run from a workspace image:
 * a tenant can build or pick a workspace image, and a helper that mounts the engine's
 * volumes folder must not run a tenant's binaries. Nor can a tenant reach a helper: the
 * exec and terminal routes address only a workspace's own container, by workspace id.
 */
import fs from 'node:fs';
import type Docker from 'dockerode';
import type { Config } from '../domain/config';
import { demux } from './docker-exec';

/** The tools image a process uses: its name and, where an engine lacks it, the root filesystem archive imported through the Docker API. */
export interface ToolsImage {
  image: string;
  archive?: string;
}

/** The label an engine's copy of the tools image carries (the workspace image has `podex.image=workspace`). */
export const TOOLS_IMAGE_LABEL = { 'podex.image': 'tools' } as const;
/** Labels of every helper container: managed by the platform, never a workspace. */
export const TOOL_LABELS = { 'podex.managed': 'true', 'podex.role': 'tool' } as const;

/** The tools image the configuration names (TOOLS_IMAGE, TOOLS_IMAGE_ARCHIVE). */
export function toolsImage(c: Pick<Config, 'TOOLS_IMAGE' | 'TOOLS_IMAGE_ARCHIVE'>): ToolsImage {
  return { image: c.TOOLS_IMAGE, archive: c.TOOLS_IMAGE_ARCHIVE };
}

/**
 * A helper's settings: runc (a helper is the platform's own code, and gVisor's ptrace platform
 * costs it seconds), no network, a read-only root with a private /tmp, no capabilities but
 * those asked for, no privilege gain. `hostConfig` is merged over these (a helper that needs
 * more, e.g. a privileged one, says so there, visibly).
 */
export function toolContainerOptions(
  tools: ToolsImage,
  o: { name: string; cmd: string[]; binds: string[]; capAdd?: string[]; labels?: Record<string, string>; hostConfig?: Docker.HostConfig },
): Docker.ContainerCreateOptions {
  return {
    name: o.name,
    Image: tools.image,
    Cmd: o.cmd,
    Labels: { ...TOOL_LABELS, ...o.labels },
    HostConfig: {
      Runtime: 'runc',
      NetworkMode: 'none',
      ReadonlyRootfs: true,
      Tmpfs: { '/tmp': 'rw,nosuid,nodev,noexec,size=256m' },
      CapDrop: ['ALL'],
      CapAdd: o.capAdd ?? [],
      SecurityOpt: ['no-new-privileges:true'],
      Binds: o.binds,
      ...o.hostConfig,
    },
  };
}

const status = (err: unknown) => (err as { statusCode?: number }).statusCode ?? 0;
const imports = new WeakMap<Docker, Promise<void>>();

/** Imports the tools image into the engine from its archive (once per engine at a time). */
export function importToolsImage(docker: Docker, tools: ToolsImage): Promise<void> {
  let running = imports.get(docker);
  if (!running) {
    running = (async () => {
      if (!tools.archive || !fs.existsSync(tools.archive)) throw new Error(`the tools image ${tools.image} is missing on the engine and no TOOLS_IMAGE_ARCHIVE is configured`);
      const [repo, tag = 'latest'] = tools.image.split(/:(?=[^/]+$)/);
      const importImage = docker.importImage.bind(docker) as unknown as (src: NodeJS.ReadableStream, opts: Record<string, unknown>) => Promise<NodeJS.ReadableStream>;
      const stream = await importImage(fs.createReadStream(tools.archive), { repo, tag, changes: ['CMD ["/bin/sh"]', `LABEL podex.image=${TOOLS_IMAGE_LABEL['podex.image']}`] });
      await new Promise<void>((resolve, reject) => docker.modem.followProgress(stream, (err: Error | null) => (err ? reject(err) : resolve())));
    })().finally(() => imports.delete(docker));
    imports.set(docker, running);
  }
  return running;
}

/** Creates a helper container; an engine without the tools image gets it imported first. */
export async function createToolContainer(docker: Docker, tools: ToolsImage, opts: Docker.ContainerCreateOptions): Promise<Docker.Container> {
  try {
    return await docker.createContainer(opts);
  } catch (err) {
    if (status(err) !== 404 || !/image/i.test((err as Error).message)) throw err;
  }
  await importToolsImage(docker, tools);
  return docker.createContainer(opts);
}

/**
 * Runs a helper to completion and returns its exit code and output; the container is always
 * removed, and at once when `signal` aborts (a cancelled or timed-out activity leaves nothing running).
 */
export async function runTool(docker: Docker, tools: ToolsImage, o: Parameters<typeof toolContainerOptions>[1], signal?: AbortSignal): Promise<{ code: number; out: string }> {
  await docker
    .getContainer(o.name)
    .remove({ force: true })
    .catch(() => undefined);
  const c = await createToolContainer(docker, tools, toolContainerOptions(tools, o));
  const stop = () => void c.remove({ force: true }).catch(() => undefined);
  signal?.addEventListener('abort', stop, { once: true });
  try {
    signal?.throwIfAborted();
    await c.start();
    const { StatusCode } = (await c.wait()) as { StatusCode: number };
    const raw = (await c.logs({ stdout: true, stderr: true })) as unknown as Buffer;
    return { code: StatusCode, out: demux(raw) };
  } finally {
    signal?.removeEventListener('abort', stop);
    await c.remove({ force: true }).catch(() => undefined);
  }
}
