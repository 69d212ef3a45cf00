import { TIERS } from '../domain/tiers';
import { createDockerActivities } from '../activities/docker';
import { createServerActivities } from '../activities/servers';
import { eventually, startHarness, type Harness } from './harness';
import { localEngines, uniq } from './helpers';

/**
 * The local engines declare more capacity than this 2-CPU machine has (daemon labels written by
 * deploy/local/stack.sh), so the biggest tier fits on one of them; its container then gets the
 * engine's real CPUs, the most Docker accepts.
 */
describe('declared capacity and the CPU cap on a real local engine', () => {
  let h: Harness;
  const suite = uniq('capacity');
  const servers: string[] = [];
  const workspaces: string[] = [];

  beforeAll(async () => {
    h = await startHarness('capacity');
  });

  afterAll(async () => {
    for (const id of workspaces) {
      const w = await h.deps.prisma.workspace.findUnique({ where: { id } });
      if (w && w.status !== 'deleted' && w.status !== 'failed') await h.call('DELETE', `/workspaces/${id}`);
    }
    await h.deps.prisma.workspace.deleteMany({ where: { id: { in: workspaces } } });
    await h.deps.prisma.workspaceServer.deleteMany({ where: { id: { in: servers } } });
    await h.close();
  });

  it('a power workspace (more CPUs than the engine has) is placed on a local engine and runs with the engine’s CPUs', async () => {
    const e = localEngines()[0];
    const docker = h.deps.fleet.engine(e);
    const ncpu = Number((await docker.info()).NCPU);
    expect(ncpu).toBeLessThan(TIERS.power.cpu);

    // Onboarding as a newcomer's quick start does it: no capacity set by hand.
    const reg = await h.call('POST', '/servers', { body: { name: 'engine-1', hostname: `${suite}.local`, ipAddress: e.host, dockerPort: e.port, labels: { suite } } });
    expect(reg.status).toBe(202);
    const serverId = reg.body.server.id as string;
    servers.push(serverId);
    const s = await eventually(async () => {
      const r = (await h.call('GET', `/servers/${serverId}`)).body;
      return r.status === 'active' ? r : undefined;
    }, 60_000);
    expect(s.total.cpu).toBeGreaterThanOrEqual(TIERS.power.cpu);
    expect(s.hostCpus).toBe(ncpu);

    const res = await h.call('POST', '/workspaces?wait=true', { token: h.userToken, body: { name: 'power', tier: 'power', server: serverId, constraints: { labels: { suite } } } });
    if (res.body?.workspace?.id) workspaces.push(res.body.workspace.id);
    expect({ status: res.status, reason: res.body.workspace?.statusReason ?? res.body.message ?? null }).toEqual({ status: 201, reason: null });
    const ws = res.body.workspace;
    expect(ws.cpuLimit).toEqual({ tier: TIERS.power.cpu, applied: ncpu, hostCpus: ncpu });

    const c = await docker.getContainer(ws.containerName).inspect();
    expect(c.State.Running).toBe(true);
    expect(c.HostConfig.NanoCpus).toBe(ncpu * 1e9);
    expect(c.HostConfig.Memory).toBe(TIERS.power.memoryMb * 1024 * 1024);

    // The workspace's own view says the same, to its owner.
    const view = (await h.call('GET', `/workspaces/${ws.id}`, { token: h.userToken })).body;
    expect(view.cpuLimit).toEqual({ tier: TIERS.power.cpu, applied: ncpu, hostCpus: ncpu });
    expect(view.assigned.cpu).toBe(TIERS.power.cpu);

    expect((await h.call('DELETE', `/workspaces/${ws.id}`, { token: h.userToken })).status).toBeLessThan(300);
  }, 240_000);

  it('onboarding refuses a capacity label that is not a whole number, naming it, and leaves the totals alone', async () => {
    const e = localEngines()[0];
    const row = await h.deps.prisma.workspaceServer.create({
      data: { name: 'bad-label', hostname: `${uniq('bad-label')}.local`, ipAddress: e.host, dockerPort: e.port, status: 'pending', totalCpu: 0, totalMemoryMb: 0, totalDiskGb: 0, labels: { suite } },
    });
    servers.push(row.id);
    const facts = await createDockerActivities(h.deps).describeEngine(e);
    const audit = { findings: [], diskGb: 10 };
    const acts = createServerActivities({ prisma: h.deps.prisma });
    await expect(acts.recordOnboarding(row.id, { ...facts, labels: ['podex.capacity.cpu=lots'] }, audit, false)).rejects.toMatchObject({
      type: 'BadCapacityLabelError',
      nonRetryable: true,
      message: expect.stringMatching(/podex\.capacity\.cpu=lots/),
    });
    expect(await h.deps.prisma.workspaceServer.findUniqueOrThrow({ where: { id: row.id } })).toMatchObject({ status: 'pending', totalCpu: 0, hostCpus: null });
  });
});
