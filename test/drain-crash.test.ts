import type { ChildProcess } from 'node:child_process';
import { eventually, registerEngines, startHarness, type Harness } from './harness';
import { execIn, localEngines, spawnWorker, uniq, WORKSPACE_SUMS } from './helpers';
import { startPrivateTemporal } from './private-temporal';

const SUMS = WORKSPACE_SUMS;

describe('a drain survives a SIGKILL of its worker and a restart of the Temporal server', () => {
  let temporal: Awaited<ReturnType<typeof startPrivateTemporal>>;
  let h: Harness;
  let worker: ChildProcess | undefined;
  const saved = process.env.TEMPORAL_ADDRESS;
  const suite = uniq('drain-crash');
  const servers: string[] = [];
  const workspaces: string[] = [];

  beforeAll(async () => {
    temporal = await startPrivateTemporal();
    process.env.TEMPORAL_ADDRESS = temporal.address;
    h = await startHarness('drain-crash', { migrationHoldHealthyMs: 1_000 }, { inProcessWorker: false });
    worker = await spawnWorker(h.taskQueue, { TEMPORAL_ADDRESS: temporal.address });
    servers.push(...(await registerEngines(h, 'dcrash', [0, 1], { suite })));
  });

  afterAll(async () => {
    if (!worker || worker.exitCode !== null) worker = await spawnWorker(h.taskQueue, { TEMPORAL_ADDRESS: temporal.address });
    for (const id of workspaces) await h.call('DELETE', `/workspaces/${id}`);
    worker.kill('SIGTERM');
    await h.deps.prisma.workspace.deleteMany({ where: { id: { in: workspaces } } });
    await h.deps.prisma.workspaceServer.deleteMany({ where: { id: { in: servers } } });
    await h.close();
    await temporal.stop();
    process.env.TEMPORAL_ADDRESS = saved;
  });

  it('finishes the drain: every workspace moved with identical files, one at a time', async () => {
    const sums = new Map<string, string>();
    for (let i = 0; i < 3; i++) {
      const res = await h.call('POST', '/workspaces?wait=true', { token: h.userToken, body: { name: `dc-${i}`, tier: 'free', server: servers[0], constraints: { labels: { suite } } } });
      expect(res.status).toBe(201);
      const ws = res.body.workspace;
      workspaces.push(ws.id);
      const c = h.deps.fleet.engine(localEngines()[0]).getContainer(ws.containerName);
      expect((await execIn(c, ['sh', '-c', `head -c ${150 * 1024 * 1024} /dev/urandom > /workspace/data.bin && echo ${i} > /workspace/id && sync`])).code).toBe(0);
      sums.set(ws.id, (await execIn(c, ['sh', '-c', SUMS])).stdout);
    }
    const drainOf = async () => (await h.call('GET', `/servers/${servers[0]}/drain`)).body;
    expect((await h.call('POST', `/servers/${servers[0]}/drain`, { body: { deadline: new Date(Date.now() + 30 * 60_000).toISOString(), maxParallel: 1 } })).status).toBe(202);

    // SIGKILL the worker while a volume is being copied; a new one takes over.
    await eventually(async () => (await drainOf()).workspaces?.some((w: { migrationPhase?: string }) => w.migrationPhase === 'copying'), 120_000, 50);
    worker!.kill('SIGKILL');
    await new Promise((r) => worker!.once('exit', r));
    worker = await spawnWorker(h.taskQueue, { TEMPORAL_ADDRESS: temporal.address });

    // Restart the Temporal server once the first workspace has moved and another is under way.
    await eventually(async () => {
      const d = await drainOf();
      return d.workspaces?.filter((w: { phase: string }) => w.phase === 'moved').length >= 1 && d.workspaces.some((w: { phase: string }) => w.phase === 'migrating');
    }, 240_000, 200);
    await temporal.restart();

    const done = await eventually(async () => {
      const d = await drainOf();
      return d.workflowStatus && d.workflowStatus !== 'RUNNING' ? d : undefined;
    }, 300_000, 500);
    expect(done).toMatchObject({ workflowStatus: 'COMPLETED', phase: 'drained' });
    expect(done.maxParallelSeen).toBe(1);
    for (const id of workspaces) {
      const ws = (await h.call('GET', `/workspaces/${id}`)).body;
      expect(ws).toMatchObject({ serverId: servers[1], status: 'running' });
      expect((await execIn(h.deps.fleet.engine(localEngines()[1]).getContainer(ws.containerName), ['sh', '-c', SUMS])).stdout).toBe(sums.get(id));
    }
    expect(await h.deps.prisma.migration.count({ where: { sourceServerId: servers[0] } })).toBe(0);
  }, 600_000);
});
