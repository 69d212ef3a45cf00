import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import Dockerode from 'dockerode';
import { createDockerActivities } from '../activities/docker';
import { readHostFilterRules } from '../activities/egress-audit';
import { egressFindings } from '../domain/egress';
import { auditVerdict } from '../domain/servers';
import { config } from '../lib/config';
import { toolsImage } from '../lib/tools-image';
import { demuxLogs, localEngines, testFleet, uniq } from './helpers';

/**
 * Workspace egress on the local engines (the rules deploy/local/stack.sh loads with
 * docker-user.sh). No packet goes to the metadata address or to any private address outside
 * what this test makes: a network namespace with a listener on a private address (and one on a
 * public-range address, the control), joined to the host by a veth; and a listener on the
 * workspace network's own gateway, an address of the host.
 */
const sh = (script: string, env: Record<string, string>) => {
  const r = spawnSync('bash', ['-euo', 'pipefail', '-c', script], { encoding: 'utf8', env: { PATH: process.env.PATH, ...env } });
  if (r.status !== 0) throw new Error(`${script.split('\n')[1] ?? script}: ${r.stderr}`);
  return r.stdout;
};

describe('workspace egress on the local engines', () => {
  const fleet = testFleet();
  const docker = fleet.engine(localEngines()[0]!);
  const tag = randomBytes(3).toString('hex');
  const octet = 1 + (parseInt(tag, 16) % 250);
  const lab = {
    ns: `pxeg${tag}`,
    veth: `pxeg${tag}h`,
    hostSide: `10.198.${octet}.1`,
    privateAddr: `10.198.${octet}.2`,
    publicAddr: `203.0.113.${octet}`,
    port: 20000 + (parseInt(tag, 16) % 20000),
  };
  const created: { networks: string[]; containers: string[] } = { networks: [], containers: [] };
  const servers: net.Server[] = [];

  beforeAll(() => {
    sh(
      `
      ip netns add "$NS"
      ip -n "$NS" link set lo up
      ip link add "$VETH" type veth peer name eth0 netns "$NS"
      ip addr add "$HOST_SIDE/30" dev "$VETH"
      ip link set "$VETH" up
      ip -n "$NS" addr add "$PRIV/30" dev eth0
      ip -n "$NS" addr add "$PUB/32" dev eth0
      ip -n "$NS" link set eth0 up
      ip -n "$NS" route add default via "$HOST_SIDE"
      ip route add "$PUB/32" via "$PRIV" dev "$VETH"
      setsid ip netns exec "$NS" "$NODE" -e "require('net').createServer((s) => s.end('ns')).listen($PORT, '0.0.0.0')" </dev/null >/dev/null 2>&1 &
      for _ in $(seq 50); do [ "$(timeout 1 bash -c "exec 3<>/dev/tcp/$PRIV/$PORT && head -c 2 <&3" 2>/dev/null)" = ns ] && exit 0; sleep 0.1; done
      echo "the namespace's listener did not answer" >&2; exit 1`,
      { NS: lab.ns, VETH: lab.veth, HOST_SIDE: lab.hostSide, PRIV: lab.privateAddr, PUB: lab.publicAddr, PORT: String(lab.port), NODE: process.execPath },
    );
  });

  afterAll(async () => {
    for (const s of servers) s.close();
    for (const id of created.containers) await docker.getContainer(id).remove({ force: true }).catch(() => undefined);
    for (const id of created.networks) await docker.getNetwork(id).remove().catch(() => undefined);
    spawnSync('bash', ['-c', 'ip netns pids "$NS" | xargs -r kill; ip netns del "$NS"; ip link del "$VETH"; ip route del "$PUB/32"'], {
      env: { PATH: process.env.PATH, NS: lab.ns, VETH: lab.veth, PUB: lab.publicAddr },
    });
  });

  /** A workspace network (the options workspaces get), with its subnet and gateway. */
  async function workspaceNetwork(): Promise<{ name: string; subnet: string; gateway: string; bridge: string }> {
    const name = uniq('podex-test-egress');
    const n = await docker.createNetwork({
      Name: name,
      Driver: 'bridge',
      Labels: { 'podex.test': '1' },
      Options: { 'com.docker.network.bridge.enable_icc': 'false', 'com.docker.network.bridge.enable_ip_masquerade': 'true' },
    });
    created.networks.push(name);
    const info = (await n.inspect()) as { Id: string; IPAM: { Config: { Subnet: string; Gateway: string }[] } };
    return { name, subnet: info.IPAM.Config[0]!.Subnet, gateway: info.IPAM.Config[0]!.Gateway, bridge: `br-${info.Id.slice(0, 12)}` };
  }

  /** What each target answers a workspace (or "blocked"), from a container on `network`. */
  async function reach(network: string, runtime: string, targets: Record<string, string>): Promise<Record<string, string>> {
    const script = Object.entries(targets)
      .map(([k, t]) => `r=$(nc -w 2 ${t.replace(':', ' ')} </dev/null 2>/dev/null || true); echo "${k}=\${r:-blocked}"`)
      .join('; ');
    const c = await docker.createContainer({ Image: config().WORKSPACE_IMAGE, Cmd: ['sh', '-c', script], Labels: { 'podex.test': '1' }, HostConfig: { Runtime: runtime, NetworkMode: network } });
    created.containers.push(c.id);
    await c.start();
    await c.wait();
    const { stdout } = demuxLogs((await c.logs({ stdout: true, stderr: true })) as unknown as Buffer);
    return Object.fromEntries(stdout.trim().split('\n').map((l) => l.split('=') as [string, string]));
  }

  async function listen(host: string, answer: string): Promise<number> {
    const s = net.createServer((c) => c.end(answer));
    servers.push(s);
    await new Promise<void>((resolve, reject) => s.once('error', reject).listen(0, host, resolve));
    return (s.address() as net.AddressInfo).port;
  }

  it('a workspace (runc and gVisor) reaches a public address, but neither a private address nor the host; the host reaches them all', async () => {
    const ws = await workspaceNetwork();
    // Workspace networks are small subnets cut from the engine's pool (finding 9).
    expect(ws.subnet).toMatch(/^10\.201\.\d+\.\d+\/28$/);
    const hostPort = await listen(ws.gateway, 'host');
    // The listeners answer when the host itself asks: what a workspace misses is the rules' doing.
    const fromHost = (host: string, port: number) =>
      new Promise<string>((resolve) => {
        let got = '';
        const c = net.connect({ host, port, timeout: 2000 }, () => undefined);
        c.on('data', (d) => (got += d.toString())).on('end', () => resolve(got)).on('error', () => resolve('error')).on('timeout', () => c.destroy());
      });
    expect([await fromHost(lab.privateAddr, lab.port), await fromHost(ws.gateway, hostPort)]).toEqual(['ns', 'host']);
    const targets = { public: `${lab.publicAddr}:${lab.port}`, private: `${lab.privateAddr}:${lab.port}`, gateway: `${ws.gateway}:${hostPort}` };
    const [runc, runsc] = await Promise.all([reach(ws.name, 'runc', targets), reach(ws.name, 'runsc', targets)]);
    expect(runc).toEqual({ public: 'ns', private: 'blocked', gateway: 'blocked' });
    expect(runsc).toEqual({ public: 'ns', private: 'blocked', gateway: 'blocked' });
  }, 60_000);

  it('the host’s rule set drops the metadata range, private ranges and the host for every engine’s pool (read, never dialled), and the onboarding audit reads it through a host-network helper', async () => {
    const ws = await workspaceNetwork();
    const text = execFileSync('iptables', ['-w', '5', '-S']).toString();
    const nets = [ws, ...[2, 3].map((i) => ({ subnet: `10.20${i}.0.16/28`, bridge: 'br-0123456789ab' }))];
    expect(egressFindings(text, nets).filter((f) => !f.ok)).toEqual([]);
    for (const i of [1, 2, 3]) expect(text).toContain(`-A DOCKER-USER -s 10.20${i}.0.0/16 -d 169.254.0.0/16 -j DROP`);

    // The helper (runc, host network, read-only, NET_ADMIN only) sees the same rules.
    const helper = await readHostFilterRules(docker, toolsImage(config()), uniq('podex-test-rules'));
    expect(helper).toContain(`-A DOCKER-USER -s 10.201.0.0/16 -d 169.254.0.0/16 -j DROP`);
    const audit = await createDockerActivities({ fleet, tools: toolsImage(config()) }).auditDaemon(localEngines()[0]!, config().WORKSPACE_IMAGE, uniq('podex-test-audit'));
    const egress = audit.findings.filter((f) => f.check.startsWith('egress'));
    expect(egress.map((f) => [f.check, f.ok])).toEqual([
      ['egress: metadata service blocked', true],
      ['egress: private network blocked', true],
      ['egress: host blocked', true],
    ]);
    // A missing rule fails onboarding, strict or not.
    const missing = helper
      .split('\n')
      .filter((l) => !l.includes('169.254.0.0/16'))
      .join('\n');
    const findings = [...audit.findings.filter((f) => !f.check.startsWith('egress')), ...egressFindings(missing, [ws])];
    expect(auditVerdict(findings, false)).toMatchObject({ ok: false, reason: expect.stringContaining('egress: metadata service blocked') });
  }, 60_000);

  it('300 workspace networks exist at once on an engine with production’s daemon.json address pools', async () => {
    // Its own dockerd (the stack's engines share this host's iptables, where 300 networks' rules
    // take minutes to write): production's pools, no iptables, no containers.
    const pools = (JSON.parse(fs.readFileSync(path.join(__dirname, '..', 'deploy/servers/workspace/daemon.json'), 'utf8')) as Record<string, unknown>)['default-address-pools'];
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'podex-pools-'));
    fs.writeFileSync(path.join(dir, 'daemon.json'), JSON.stringify({ 'default-address-pools': pools, iptables: false, 'ip-masq': false, bridge: 'none' }));
    const sock = path.join(dir, 'd.sock');
    const daemon = spawn('dockerd', ['--config-file', path.join(dir, 'daemon.json'), '--data-root', path.join(dir, 'data'), '--exec-root', path.join(dir, 'x'), '--pidfile', path.join(dir, 'd.pid'), '-H', `unix://${sock}`], { stdio: 'ignore' });
    const engine = new Dockerode({ socketPath: sock });
    const ids: string[] = [];
    try {
      for (let i = 0; ; i++) {
        if (await engine.ping().then(() => true, () => false)) break;
        if (i > 150) throw new Error('the pool engine did not start');
        await new Promise((r) => setTimeout(r, 100));
      }
      for (let i = 0; i < 300; i += 25) {
        const batch = await Promise.all(Array.from({ length: 25 }, (_, j) => engine.createNetwork({ Name: `ws-${i + j}`, Driver: 'bridge', Options: { 'com.docker.network.bridge.enable_icc': 'false' } })));
        ids.push(...batch.map((n) => n.id));
      }
      const subnets = (await engine.listNetworks()).flatMap((n) => (n.IPAM?.Config ?? []).map((c) => c.Subnet ?? ''));
      expect(subnets).toHaveLength(300);
      expect(new Set(subnets).size).toBe(300);
      for (const s of subnets) expect(s).toMatch(/^172\.(2[0-3])\.\d+\.\d+\/28$/);
    } finally {
      daemon.kill('SIGTERM');
      await new Promise((r) => daemon.once('exit', r));
      // Its bridges outlive it; each is named after its network.
      for (const id of ids) spawnSync('ip', ['link', 'del', `br-${id.slice(0, 12)}`]);
      fs.rmSync(dir, { recursive: true, force: true });
    }
  }, 60_000);
});
