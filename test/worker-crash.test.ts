import type { ChildProcess } from 'node:child_process';
import { PHASE } from '../lib/constants';
import { eventually, registerEngines, startHarness, type Harness } from './harness';
import { localEngines, spawnWorker, uniq } from './helpers';

describe('a worker killed with SIGKILL during provisioning', () => {
  let h: Harness;
  let worker: ChildProcess | undefined;
  const suite = uniq('crash');
  const servers: string[] = [];
  const created: string[] = [];

  beforeAll(async () => {
    h = await startHarness('crash', {}, { inProcessWorker: false });
    worker = await spawnWorker(h.taskQueue);
    servers.push(...(await registerEngines(h, 'crash', [0, 1], { suite })));
  });

  afterAll(async () => {
    if (!worker || worker.exitCode !== null) worker = await spawnWorker(h.taskQueue);
    await Promise.all(created.map((id) => h.call('DELETE', `/workspaces/${id}`)));
    worker?.kill('SIGTERM');
    await h.deps.prisma.workspace.deleteMany({ where: { id: { in: created } } });
    await h.deps.prisma.workspaceServer.deleteMany({ where: { id: { in: servers } } });
    await h.close();
  });

  it('resumes after a restart: every workspace runs exactly once, with no orphans and exact reservations', async () => {
    const phasesAtKill: string[] = [];
    for (const delayMs of [100, 300, 500, 800, 1200, 1800]) {
      const res = await h.call('POST', '/workspaces', { token: h.userToken, body: { name: `crash-${delayMs}`, tier: 'free', constraints: { labels: { suite } } } });
      expect(res.status).toBe(202);
      const id = res.body.workspace.id as string;
      created.push(id);
      await new Promise((r) => setTimeout(r, delayMs));
      worker!.kill('SIGKILL');
      await new Promise((r) => worker!.once('exit', r));
      // The phase the workflow had published when its worker died (no worker needed to read it).
      const described = await h.client.workflow.getHandle(`workspace-${id}`).describe();
      phasesAtKill.push(String(described.typedSearchAttributes.get(PHASE) ?? 'not started'));
      worker = await spawnWorker(h.taskQueue);
    }
    const rows = await eventually(async () => {
      const r = await h.deps.prisma.workspace.findMany({ where: { id: { in: created } } });
      return r.every((w) => w.status === 'running') ? r : undefined;
    }, 180_000, 500);
    process.stdout.write(`worker killed in phases: ${phasesAtKill.join(', ')}\n`);

    for (const w of rows) {
      const docker = h.deps.fleet.engine(localEngines()[servers.indexOf(w.serverId!)]);
      const byLabel = { label: [`podex.workspace_id=${w.id}`] };
      // Exactly one of each, on the chosen server only.
      expect((await docker.listContainers({ all: true, filters: byLabel })).map((c) => c.State)).toEqual(['running']);
      expect((await docker.listNetworks({ filters: byLabel })).length).toBe(1);
      expect(((await docker.listVolumes({ filters: byLabel })).Volumes ?? []).length).toBe(1);
      const other = h.deps.fleet.engine(localEngines()[1 - servers.indexOf(w.serverId!)]);
      expect((await other.listContainers({ all: true, filters: byLabel })).length).toBe(0);
      expect((await other.listNetworks({ filters: byLabel })).length).toBe(0);
    }
    // Reservations: each server holds exactly the capacity of the workspaces placed on it.
    for (const id of servers) {
      const s = await h.deps.prisma.workspaceServer.findUniqueOrThrow({ where: { id } });
      const mine = rows.filter((w) => w.serverId === id);
      const others = await h.deps.prisma.workspace.aggregate({ where: { serverId: id, id: { notIn: created }, assignedCpu: { not: null } }, _sum: { assignedCpu: true } });
      expect(s.reservedCpu).toBeCloseTo(mine.reduce((n, w) => n + (w.assignedCpu ?? 0), 0) + (others._sum.assignedCpu ?? 0));
    }
    // A lost attempt is noticed when its timeout runs out (workflow task 10 s, Docker steps 20 s).
  }, 300_000);
});
