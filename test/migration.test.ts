import { execFileSync } from 'node:child_process';
import path from 'node:path';
import Docker from 'dockerode';
import { DockerFleet, type EngineEndpoint } from '../lib/docker-fleet';
import { migrationStateQuery } from '../workflows/migrate-workspace';
import { eventually, registerEngines, startHarness, type Harness } from './harness';
import { execIn, localEngines, testFleet, uniq, withEngine3 } from './helpers';
import { maybeRecordHistory } from './temporal-env';

/** The real fleet, except that an engine can be made unreachable (a closed loopback port) on demand. */
class BreakableFleet extends DockerFleet {
  readonly broken = new Set<string>();
  private readonly inner = testFleet();
  constructor() {
    super({ caFile: '', certFile: '', keyFile: '' });
  }
  override engine(e: EngineEndpoint): Docker {
    return this.broken.has(DockerFleet.key(e)) ? new Docker({ protocol: 'http', host: '127.0.0.1', port: 1, timeout: 2_000 }) : this.inner.engine(e);
  }
}

const files = (bytes: number) => `cd /workspace && mkdir -p src/deep && echo 'fn main() {}' > src/main.rs && printf 'notes\\n' > src/deep/notes.md &&
  head -c ${bytes} /dev/urandom > big.bin && ln -s src/main.rs link && sync`;
const STACK = path.join(__dirname, '..', 'deploy', 'local', 'stack.sh');
const SUMS = `cd /workspace && find . -type f | sort | xargs sha256sum && readlink link`;

describe('migrating a workspace and its data to another server', () => {
  let h: Harness;
  const fleet = new BreakableFleet();
  const suite = uniq('migrate');
  const servers: string[] = [];
  const workspaces: string[] = [];

  beforeAll(async () => {
    h = await startHarness('migrate', { migrationHoldHealthyMs: 2_000 }, { overrides: { fleet } });
    servers.push(...(await registerEngines(h, 'mig', [0, 1], { suite })));
  });

  afterAll(async () => {
    fleet.broken.clear();
    try {
      for (const id of workspaces) await h.call('DELETE', `/workspaces/${id}`);
      await h.deps.prisma.workspace.deleteMany({ where: { id: { in: workspaces } } });
      await h.deps.prisma.workspaceServer.deleteMany({ where: { id: { in: servers } } });
    } finally {
      // Also terminates a migration a failed test left waiting for its target engine.
      await h?.close();
    }
  });

  async function workspaceWithFiles(name: string, bytes = 52_428_800) {
    const res = await h.call('POST', '/workspaces?wait=true', { token: h.userToken, body: { name, tier: 'free', server: servers[0], constraints: { labels: { suite } } } });
    expect(res.status).toBe(201);
    const ws = res.body.workspace;
    workspaces.push(ws.id);
    const c = h.deps.fleet.engine(localEngines()[0]).getContainer(ws.containerName);
    expect((await execIn(c, ['sh', '-c', files(bytes)])).code).toBe(0);
    const sums = await execIn(c, ['sh', '-c', SUMS]);
    expect(sums.stdout).toMatch(/big\.bin/);
    return { ws, sums: sums.stdout };
  }
  const reserved = async (id: string) => (await h.call('GET', `/servers/${id}`)).body.reserved.cpu as number;

  it('moves a running workspace with a 50 MB file: identical checksums, running on the target, nothing left on the source', async () => {
    const { ws, sums } = await workspaceWithFiles('mover');
    const before = [await reserved(servers[0]), await reserved(servers[1])];

    const res = await h.call('POST', `/workspaces/${ws.id}/migrate?wait=true`, { body: { targetServer: servers[1] } });
    // The outcome first: on a failure it shows the reason.
    expect(res.body.migration).toMatchObject({ outcome: 'moved', sourceServerId: servers[0], targetServerId: servers[1], status: 'running' });
    expect(res.status).toBe(200);
    expect(res.body.migration.bytesCopied).toBeGreaterThan(50 * 1024 * 1024);
    expect(res.body.workspace).toMatchObject({ serverId: servers[1], status: 'running' });

    const target = h.deps.fleet.engine(localEngines()[1]).getContainer(ws.containerName);
    expect((await target.inspect()).State.Running).toBe(true);
    expect((await execIn(target, ['sh', '-c', SUMS])).stdout).toBe(sums);
    const source = h.deps.fleet.engine(localEngines()[0]);
    await expect(source.getContainer(ws.containerName).inspect()).rejects.toMatchObject({ statusCode: 404 });
    await expect(source.getNetwork(ws.networkName).inspect()).rejects.toMatchObject({ statusCode: 404 });
    await expect(source.getVolume(ws.volumeName).inspect()).rejects.toMatchObject({ statusCode: 404 });
    expect([await reserved(servers[0]), await reserved(servers[1])]).toEqual([before[0] - 1, before[1] + 1]);
    expect(await h.deps.prisma.migration.count({ where: { workspaceId: ws.id } })).toBe(0);
    maybeRecordHistory('migrate-workspace', await h.client.workflow.getHandle(res.body.workflowId).fetchHistory());

    // Its lifecycle goes on where it lives now.
    expect((await h.call('POST', `/workspaces/${ws.id}/restart`, { token: h.userToken })).body.status).toBe('running');
    expect((await execIn(target, ['sh', '-c', SUMS])).stdout).toBe(sums);
  });

  it('rolls back when the target cannot be reached: the workspace runs on the source again, its files untouched', async () => {
    const { ws, sums } = await workspaceWithFiles('stayer');
    const before = [await reserved(servers[0]), await reserved(servers[1])];
    fleet.broken.add(DockerFleet.key(localEngines()[1]));
    const started = await h.call('POST', `/workspaces/${ws.id}/migrate`, { body: { targetServer: servers[1] } });
    expect(started.status).toBe(202);
    const handle = h.client.workflow.getHandle(started.body.workflowId);
    // The workspace comes back first; the target's leftovers are cleaned once it answers again.
    await eventually(async () => (await handle.query(migrationStateQuery)).phase === 'removing-target-leftovers', 120_000, 300);
    expect((await h.call('GET', `/workspaces/${ws.id}`)).body).toMatchObject({ serverId: servers[0], status: 'running' });
    fleet.broken.clear();
    const result = await handle.result();
    expect(result).toMatchObject({ outcome: 'rolled-back', status: 'running' });
    expect(result.error).toMatch(/ECONNREFUSED|connect/);
    const c = h.deps.fleet.engine(localEngines()[0]).getContainer(ws.containerName);
    expect((await c.inspect()).State.Running).toBe(true);
    expect((await execIn(c, ['sh', '-c', SUMS])).stdout).toBe(sums);
    expect([await reserved(servers[0]), await reserved(servers[1])]).toEqual(before);
    await expect(h.deps.fleet.engine(localEngines()[1]).getContainer(ws.containerName).inspect()).rejects.toMatchObject({ statusCode: 404 });
    expect(await h.deps.prisma.migration.count({ where: { workspaceId: ws.id } })).toBe(0);
    maybeRecordHistory('migrate-workspace-rolled-back', await handle.fetchHistory());
  });

  it('refuses what cannot be migrated, naming the field', async () => {
    const res = await h.call('POST', `/workspaces/${workspaces[0]}/migrate`, { body: { targetServer: 'elsewhere' } });
    expect(res.status).toBe(400);
    expect(JSON.stringify(res.body)).toContain('targetServer');
    expect((await h.call('POST', `/workspaces/${workspaces[0]}/migrate`, { token: h.userToken, body: {} })).status).toBe(403);
  });

  it('killing the target engine mid-copy rolls the workspace back to the source intact; its leftovers go when the engine returns', () =>
    withEngine3(async () => {
      const [third] = await registerEngines(h, 'mig3', [2], { suite });
      servers.push(third);
      const { ws, sums } = await workspaceWithFiles('interrupted', 400 * 1024 * 1024);
      const before = await reserved(third);
      const started = await h.call('POST', `/workspaces/${ws.id}/migrate`, { body: { targetServer: third } });
      const handle = h.client.workflow.getHandle(started.body.workflowId);
      await eventually(async () => (await handle.query(migrationStateQuery)).phase === 'copying', 120_000, 50);
      try {
        execFileSync('bash', [STACK, 'engine-stop', '3']);
        await eventually(async () => ['removing-target-leftovers', 'rolled-back'].includes((await handle.query(migrationStateQuery)).phase), 180_000, 300);
        expect((await h.call('GET', `/workspaces/${ws.id}`)).body).toMatchObject({ serverId: servers[0], status: 'running' });
        const c = h.deps.fleet.engine(localEngines()[0]).getContainer(ws.containerName);
        expect((await execIn(c, ['sh', '-c', SUMS])).stdout).toBe(sums);
      } finally {
        execFileSync('bash', [STACK, 'engine-start', '3']);
      }
      const result = await handle.result();
      expect(result).toMatchObject({ outcome: 'rolled-back', status: 'running' });
      process.stdout.write(`interrupted copy: ${result.error}\n`);
      const third3 = h.deps.fleet.engine(localEngines()[2]);
      const byLabel = JSON.stringify({ label: [`podex.workspace_id=${ws.id}`] });
      expect(await third3.listContainers({ all: true, filters: byLabel })).toEqual([]);
      expect(await third3.listNetworks({ filters: byLabel })).toEqual([]);
      expect((await third3.listVolumes({ filters: byLabel })).Volumes ?? []).toEqual([]);
      expect(await reserved(third)).toBe(before);
      expect(await h.deps.prisma.migration.count({ where: { workspaceId: ws.id } })).toBe(0);
    }),
  400_000);
});
