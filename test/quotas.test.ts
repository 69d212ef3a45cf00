import { mintToken } from '../api/auth';
import { config } from '../lib/config';
import { startHarness, type Harness } from './harness';
import { uniq } from './helpers';

/**
 * Per-user limits and entitlements at POST /workspaces. No worker polls this harness's task
 * queue: accepted workspaces stay pending, so each one keeps counting while the test runs.
 */
describe('quotas and entitlements', () => {
  let h: Harness;
  const users: string[] = [];
  let server: string;

  beforeAll(async () => {
    h = await startHarness('quotas', {}, { inProcessWorker: false });
    // A server in service with room for every tier, so that placement accepts what the limits allow (no workflow runs here).
    server = (
      await h.deps.prisma.workspaceServer.create({
        data: { name: 'quotas', hostname: `${uniq('quotas')}.local`, ipAddress: '127.0.0.1', dockerPort: 23761, status: 'active', totalCpu: 64, totalMemoryMb: 262_144, totalDiskGb: 2000 },
      })
    ).id;
  });

  afterAll(async () => {
    await h.deps.prisma.workspace.deleteMany({ where: { ownerId: { in: users } } });
    await h.deps.prisma.workspaceServer.deleteMany({ where: { id: server } });
    await h.deps.prisma.userLimits.deleteMany({ where: { userId: { in: users } } });
    await h.deps.prisma.auditLog.deleteMany({ where: { targetType: 'user', targetId: { in: users } } });
    await h.close();
  });

  /** A new user on the default plan (free), and their token. */
  async function newUser() {
    const id = uniq('quota-user');
    users.push(id);
    return { id, token: await mintToken(config().JWT_SECRET_KEY, id, 'user') };
  }
  const create = (token: string, body: Record<string, unknown> = {}) =>
    h.call('POST', '/workspaces', { token, body: { name: 'q', tier: 'free', ...body } });
  const setLimits = (id: string, body: Record<string, unknown>, token?: string) => h.call('PUT', `/users/${encodeURIComponent(id)}/limits`, { token, body });

  it('refuses a workspace past the plan’s count, naming the limit', async () => {
    const u = await newUser();
    expect((await create(u.token)).status).toBe(202);
    expect((await create(u.token)).status).toBe(202);
    const third = await create(u.token);
    expect(third.status).toBe(403);
    expect(third.body).toMatchObject({ error: 'quota_exceeded', details: { limit: 'maxWorkspaces', max: 2, used: 2 } });
    expect(third.body.message).toMatch(/^maxWorkspaces: /);
    // A deleted workspace no longer counts.
    const [first] = await h.deps.prisma.workspace.findMany({ where: { ownerId: u.id } });
    expect((await h.call('DELETE', `/workspaces/${first.id}`, { token: u.token })).status).toBe(204);
    expect((await create(u.token)).status).toBe(202);
  });

  it('10 concurrent creates cannot exceed the count', async () => {
    const u = await newUser();
    const results = await Promise.all(Array.from({ length: 10 }, (_, i) => create(u.token, { name: `burst-${i}` })));
    expect(results.filter((r) => r.status === 202)).toHaveLength(2);
    expect(results.filter((r) => r.status === 403 && r.body.details.limit === 'maxWorkspaces')).toHaveLength(8);
    expect(await h.deps.prisma.workspace.count({ where: { ownerId: u.id } })).toBe(2);
  });

  it('refuses past the total CPU, memory and disk, naming each limit', async () => {
    const cpu = await newUser();
    expect((await setLimits(cpu.id, { plan: 'pro', maxCpu: 3 })).status).toBe(200);
    expect((await create(cpu.token, { tier: 'pro' })).status).toBe(202);
    expect((await create(cpu.token, { tier: 'pro' })).body).toMatchObject({ error: 'quota_exceeded', details: { limit: 'maxCpu', max: 3, used: 2, asked: 2 } });

    const memory = await newUser();
    await setLimits(memory.id, { plan: 'pro', maxMemoryMb: 5000 });
    expect((await create(memory.token, { tier: 'pro' })).status).toBe(202);
    const m = await create(memory.token, { tier: 'free' });
    expect([m.status, m.body.details.limit]).toEqual([403, 'maxMemoryMb']);

    const disk = await newUser();
    await setLimits(disk.id, { maxDiskGb: 8 });
    expect((await create(disk.token)).status).toBe(202);
    const d = await create(disk.token);
    expect([d.status, d.body.details.limit]).toEqual([403, 'maxDiskGb']);
  });

  it('refuses a tier or a GPU the plan does not include, naming the field', async () => {
    const u = await newUser();
    const power = await create(u.token, { tier: 'power' });
    expect(power.status).toBe(403);
    expect(power.body).toMatchObject({ error: 'forbidden', details: { field: 'tier' } });
    expect(power.body.message).toMatch(/^tier: the free plan does not include the power tier/);
    const gpu = await create(u.token, { constraints: { gpu: { count: 1 } } });
    expect(gpu.status).toBe(403);
    expect(gpu.body.details).toEqual({ field: 'constraints.gpu' });
    expect(await h.deps.prisma.workspace.count({ where: { ownerId: u.id } })).toBe(0);
  });

  it('the image field and a server pin are for admins (or a user an admin let choose servers)', async () => {
    const u = await newUser();
    const image = await create(u.token, { image: 'podex/workspace:latest' });
    expect(image.status).toBe(403);
    expect(image.body).toMatchObject({ error: 'forbidden', details: { field: 'image' } });
    expect(image.body.message).toMatch(/^image: /);
    const pinned = await create(u.token, { server });
    expect(pinned.status).toBe(403);
    expect(pinned.body).toMatchObject({ error: 'forbidden', details: { field: 'server' } });
    expect(await h.deps.prisma.workspace.count({ where: { ownerId: u.id } })).toBe(0);

    const admin = await h.call('POST', '/workspaces', { body: { name: 'admin-image', tier: 'power', image: 'podex/workspace:latest', server } });
    expect(admin.status).toBe(202);
    await h.deps.prisma.workspace.delete({ where: { id: admin.body.workspace.id } });

    await setLimits(u.id, { serverChoice: true });
    expect((await create(u.token, { server })).status).toBe(202);
  });

  it('an admin overrides a user’s limits; a user reads only their own and changes none', async () => {
    const u = await newUser();
    const other = await newUser();
    const own = await h.call('GET', `/users/${u.id}/limits`, { token: u.token });
    expect(own.status).toBe(200);
    expect(own.body).toMatchObject({ userId: u.id, plan: 'free', overrides: {}, limits: { maxWorkspaces: 2, tiers: ['free'], serverChoice: false }, usage: { workspaces: 0 } });
    expect((await h.call('GET', `/users/${u.id}/limits`, { token: other.token })).status).toBe(403);
    const bySelf = await setLimits(u.id, { maxWorkspaces: 100 }, u.token);
    expect(bySelf.status).toBe(403);
    expect((await setLimits(u.id, { maxWorkspaces: 100 }, other.token)).status).toBe(403);
    const bad = await setLimits(u.id, { maxWorkspaces: -1, plan: 'gold', extra: 1 });
    expect(bad.status).toBe(400);
    expect(bad.body.message).toMatch(/maxWorkspaces/);
    expect(bad.body.message).toMatch(/plan/);
    expect(bad.body.message).toMatch(/extra: unknown field/);

    const set = await setLimits(u.id, { plan: 'pro', maxWorkspaces: 3 });
    expect(set.status).toBe(200);
    expect(set.body).toMatchObject({ plan: 'pro', overrides: { plan: 'pro', maxWorkspaces: 3 }, limits: { maxWorkspaces: 3, tiers: ['free', 'pro'] } });
    for (let i = 0; i < 3; i++) expect((await create(u.token, { tier: 'pro', name: `o-${i}` })).status).toBe(202);
    expect((await create(u.token)).body.details).toMatchObject({ limit: 'maxWorkspaces', max: 3 });
    expect((await h.call('GET', `/users/${u.id}/limits`)).body.usage).toEqual({ workspaces: 3, cpu: 6, memoryMb: 12288, diskGb: 60, gpus: 0 });
    const audit = await h.call('GET', `/audit?targetType=user&targetId=${u.id}`);
    expect(audit.body.entries[0]).toMatchObject({ action: 'user.limits', actor: 'test-admin', after: { plan: 'pro', maxWorkspaces: 3 } });

    // PUT replaces: what it leaves out follows the plan again.
    expect((await setLimits(u.id, {})).body).toMatchObject({ plan: 'free', overrides: {}, limits: { maxWorkspaces: 2 } });
  });
});
