import type Docker from 'dockerode';
import { egressFindings, type WorkspaceNet } from '../domain/egress';
import type { DaemonFinding } from '../domain/servers';
import { runTool, type ToolsImage } from '../lib/tools-image';

/**
 * The host's filter table as `iptables -S` prints it, read by a helper from the tools image:
 * runc, the host's network namespace (where the rules live), NET_ADMIN and SYS_CHROOT only, a
 * read-only root and the host's root mounted read-only for its own iptables binary (whichever
 * backend, legacy or nft, Docker writes with). It runs to completion and is removed.
 */
export async function readHostFilterRules(docker: Docker, tools: ToolsImage, name: string): Promise<string> {
  const r = await runTool(docker, tools, {
    name,
    cmd: ['chroot', '/host', 'iptables', '-w', '5', '-S'],
    binds: ['/:/host:ro'],
    capAdd: ['NET_ADMIN', 'SYS_CHROOT'],
    // Host networking is refused in a remapped user namespace (production's userns-remap).
    hostConfig: { NetworkMode: 'host', UsernsMode: 'host' },
  });
  if (r.code !== 0) throw new Error(`iptables -S exited ${r.code}: ${r.out.slice(0, 300)}`);
  return r.out;
}

/**
 * Egress findings for the engine's bridge networks and one new network made for the check (so
 * a fresh server, with none yet, shows where workspace networks will come from).
 */
export async function auditEgress(docker: Docker, tools: ToolsImage, probeName: string): Promise<DaemonFinding[]> {
  const netName = `${probeName}-net`;
  await docker.getNetwork(netName).remove().catch(() => undefined);
  try {
    await docker.createNetwork({ Name: netName, Driver: 'bridge', Labels: { 'podex.managed': 'true', 'podex.probe': 'true' } });
    const nets: WorkspaceNet[] = [];
    for (const n of await docker.listNetworks({ filters: { driver: ['bridge'] } })) {
      const bridge = n.Options?.['com.docker.network.bridge.name'] ?? `br-${n.Id.slice(0, 12)}`;
      for (const c of n.IPAM?.Config ?? []) if (c.Subnet && /^\d+\.\d+\.\d+\.\d+\/\d+$/.test(c.Subnet)) nets.push({ subnet: c.Subnet, bridge });
    }
    return egressFindings(await readHostFilterRules(docker, tools, `${probeName}-rules`), nets);
  } catch (err) {
    const detail = `could not read the rules: ${(err as Error).message.slice(0, 300)}`;
    return ['egress: metadata service blocked', 'egress: private network blocked', 'egress: host blocked'].map((check) => ({ check, required: true, ok: false, detail }));
  } finally {
    await docker.getNetwork(netName).remove().catch(() => undefined);
  }
}
