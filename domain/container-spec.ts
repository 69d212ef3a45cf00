/**
 * The hardened container of a workspace (seed Tasks 5.5 and 5.6): gVisor runtime, every
 * capability dropped but a short list, no privilege escalation, the default seccomp
 * profile, limits from the tier, tmpfs for /tmp and /run, its own network and volume.
 * Every name derives from the workspace id, so a retried step finds its earlier work.
 */
import type { Tier } from './tiers';

export const CAP_ADD = ['CHOWN', 'SETUID', 'SETGID', 'DAC_OVERRIDE', 'FOWNER', 'KILL', 'NET_BIND_SERVICE'] as const;
export const PIDS_LIMIT = 500;
export const HTTP_PORT = 8080;
export const SSH_PORT = 22;
export const WORKSPACE_MOUNT = '/workspace';
/**
 * Who a workspace runs as when its image names no non-root user: the workspace image's
 * `podex` (uid 1000), who owns /workspace. Never root: a tenant's processes, exec and
 * terminals run without the capabilities root would hold even inside gVisor.
 */
export const DEFAULT_WORKSPACE_USER = '1000:1000';

/** The user a workspace runs as: the image's own (its `USER`) unless that is root or unset. */
export function workspaceUser(imageUser: string | undefined | null): string {
  const u = (imageUser ?? '').trim();
  return u === '' || /^(root|0)(:|$)/.test(u) ? DEFAULT_WORKSPACE_USER : u;
}
/**
 * "Ready" means the IDE's HTTP endpoint answers. Provisioning runs this probe itself right
 * after the start; Docker's health check runs the same command on a slow interval afterwards.
 */
export const READY_PROBE = ['sh', '-c', `printf 'HEAD / HTTP/1.0\\r\\n\\r\\n' | nc -w 1 127.0.0.1 ${HTTP_PORT} | grep -q '^HTTP/'`];
const SECOND = 1_000_000_000;

export interface WorkspaceNames {
  container: string;
  network: string;
  volume: string;
}

export function workspaceNames(workspaceId: string): WorkspaceNames {
  return { container: `podex-ws-${workspaceId}`, network: `podex-ws-${workspaceId}`, volume: `podex-ws-${workspaceId}` };
}

export function workspaceLabels(workspaceId: string, ownerId: string, tier: string): Record<string, string> {
  return { 'podex.workspace_id': workspaceId, 'podex.managed': 'true', 'podex.owner': ownerId, 'podex.tier': tier };
}

/** Bridge network with inter-container communication off and outbound NAT on. */
export function networkSpec(workspaceId: string, labels: Record<string, string>) {
  return {
    Name: workspaceNames(workspaceId).network,
    Driver: 'bridge',
    Internal: false,
    Attachable: false,
    CheckDuplicate: true,
    Options: {
      'com.docker.network.bridge.enable_icc': 'false',
      'com.docker.network.bridge.enable_ip_masquerade': 'true',
    },
    Labels: labels,
  };
}

export interface ContainerSpecInput {
  workspaceId: string;
  ownerId: string;
  tier: Tier;
  image: string;
  /** The server's runtime (runsc unless the server says otherwise). */
  runtime: string;
  /** Whether the engine's storage driver can enforce a per-container disk limit. */
  diskLimitSupported: boolean;
  /** The server's private address: every published port is bound to it alone, never to 0.0.0.0. */
  publishAddress: string;
  /** Container ports the user declared for previews. */
  previewPorts?: number[];
  /** Whether the image serves SSH (it exposes 22/tcp): then that port is published too. */
  ssh?: boolean;
  /** The image's `USER` (read from the image at creation); see workspaceUser. */
  imageUser?: string;
  /** The engine's real CPU count (the server's `hostCpus`); null or absent when not known. See cpuLimit. */
  hostCpus?: number | null;
}

/**
 * The CPUs a workspace's container may use: its tier's figure, capped at the engine's real CPU
 * count. Docker refuses a limit above the host's CPUs ("Range of CPUs is from 0.01 to N"), and a
 * server may declare more capacity than its hardware (domain/declared-capacity.ts), so a tier
 * larger than the machine gets the whole machine rather than no container.
 */
export function cpuLimit(tierCpu: number, hostCpus: number | null | undefined): number {
  return hostCpus && hostCpus > 0 ? Math.min(tierCpu, hostCpus) : tierCpu;
}

/** The container ports a workspace publishes: the IDE's, SSH's if the image has it, and the declared previews. */
export function publishedContainerPorts(i: Pick<ContainerSpecInput, 'previewPorts' | 'ssh'>): number[] {
  return [HTTP_PORT, ...(i.ssh ? [SSH_PORT] : []), ...(i.previewPorts ?? [])];
}

/**
 * Host ports chosen by Docker, read from a container's inspect (`NetworkSettings.Ports`):
 * only bindings on the publish address count. A port with no binding is left out.
 */
/** The same host ports from a container list entry's `Ports` (`docker ps`), which the heartbeat reads anyway. */
export function hostPortsFromSummary(ports: { IP?: string; PrivatePort: number; PublicPort?: number; Type: string }[], publishAddress?: string) {
  const asInspect: Record<string, { HostIp: string; HostPort: string }[]> = {};
  for (const p of ports) {
    if (!p.PublicPort) continue;
    (asInspect[`${p.PrivatePort}/${p.Type}`] ??= []).push({ HostIp: p.IP ?? '', HostPort: String(p.PublicPort) });
  }
  return hostPortsFrom(asInspect, publishAddress);
}

export function hostPortsFrom(
  ports: Record<string, { HostIp: string; HostPort: string }[] | null> | undefined,
  publishAddress?: string,
): { httpPort: number | null; sshPort: number | null; publishedPorts: Record<string, number> } {
  const hostPort = (p: number): number | null => {
    const b = (ports?.[`${p}/tcp`] ?? []).find((x) => !publishAddress || x.HostIp === publishAddress);
    return b && Number(b.HostPort) > 0 ? Number(b.HostPort) : null;
  };
  const publishedPorts: Record<string, number> = {};
  for (const key of Object.keys(ports ?? {})) {
    const p = Number(key.split('/')[0]);
    if (p === HTTP_PORT || p === SSH_PORT || !key.endsWith('/tcp')) continue;
    const h = hostPort(p);
    if (h) publishedPorts[String(p)] = h;
  }
  return { httpPort: hostPort(HTTP_PORT), sshPort: hostPort(SSH_PORT), publishedPorts };
}

/** The Docker create options for a workspace container (Engine API shape). */
export function containerSpec(i: ContainerSpecInput) {
  const names = workspaceNames(i.workspaceId);
  const memory = i.tier.memoryMb * 1024 * 1024;
  const published = publishedContainerPorts(i);
  return {
    name: names.container,
    Image: i.image,
    Hostname: `ws-${i.workspaceId.slice(0, 8)}`,
    // Exec and terminals run as this user too (Docker's default for an exec).
    User: workspaceUser(i.imageUser),
    WorkingDir: WORKSPACE_MOUNT,
    // The IDE's HTTP endpoint (see READY_PROBE).
    Cmd: ['httpd', '-f', '-p', String(HTTP_PORT), '-h', '/var/www'],
    Labels: workspaceLabels(i.workspaceId, i.ownerId, i.tier.name),
    ExposedPorts: Object.fromEntries(published.map((p) => [`${p}/tcp`, {}])),
    Healthcheck: {
      // Every probe is an exec in the gVisor sandbox, which costs CPU on the server: a slow
      // interval watches running workspaces without loading a server full of them.
      Test: ['CMD-SHELL', READY_PROBE[2]],
      Interval: 30 * SECOND,
      Timeout: 5 * SECOND,
      StartPeriod: 30 * SECOND,
      Retries: 3,
    },
    HostConfig: {
      Runtime: i.runtime,
      CapDrop: ['ALL'],
      CapAdd: [...CAP_ADD],
      SecurityOpt: ['no-new-privileges:true'],
      PidsLimit: PIDS_LIMIT,
      NanoCpus: Math.round(cpuLimit(i.tier.cpu, i.hostCpus) * 1e9),
      Memory: memory,
      MemorySwap: memory,
      ...(i.diskLimitSupported ? { StorageOpt: { size: `${i.tier.diskGb}G` } } : {}),
      Tmpfs: { '/tmp': 'rw,nosuid,size=1g,mode=1777', '/run': 'rw,nosuid,size=100m,mode=755' },
      ReadonlyRootfs: false,
      NetworkMode: names.network,
      // Docker chooses each host port (read again after every start: it can change); UFW does
      // not see these, so the workspace server's DOCKER-USER rules admit the platform alone.
      PortBindings: Object.fromEntries(published.map((p) => [`${p}/tcp`, [{ HostIp: i.publishAddress, HostPort: '' }]])),
      Mounts: [{ Type: 'volume', Source: names.volume, Target: WORKSPACE_MOUNT }],
      RestartPolicy: { Name: 'unless-stopped' },
      LogConfig: { Type: 'json-file', Config: { 'max-size': '10m', 'max-file': '3' } },
    },
  };
}

export type ContainerSpec = ReturnType<typeof containerSpec>;
