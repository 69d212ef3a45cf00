import { randomUUID } from 'node:crypto';
import { WorkflowNotFoundError } from '@temporalio/client';
import { idFromKey } from '../api/routes/workspaces';
import { PLACEMENT_RETRY_AFTER_SECONDS } from '../api/placement-check';
import { NO_CAPACITY, UNSATISFIABLE } from '../domain/status-reasons';
import { WORKFLOW_ID } from '../lib/constants';
import type { Prisma, WorkspaceServer } from '../lib/prisma';
import { registerEngines, startHarness, type Harness } from './harness';
import { uniq } from './helpers';

/**
 * What POST /workspaces and POST /workspaces/:id/migrate answer when placement refuses: 422 naming
 * the field when no server could ever take the workspace, 503 with Retry-After when none can take
 * it now, and in neither case a workspace row or a workflow left behind.
 */
describe('placement errors have the right status', () => {
  let h: Harness;
  const suite = uniq('perr');
  const servers: string[] = [];
  const workspaces: string[] = [];
  let fleet: WorkspaceServer[] = [];

  beforeAll(async () => {
    h = await startHarness('placement-errors');
    servers.push(...(await registerEngines(h, 'perr', [0, 1], { suite })));
    fleet = await h.deps.prisma.workspaceServer.findMany({ where: { id: { in: servers } } });
  });

  afterAll(async () => {
    try {
      for (const id of workspaces) {
        const w = await h.deps.prisma.workspace.findUnique({ where: { id } });
        if (w && ['running', 'stopped'].includes(w.status) && w.containerName) await h.call('DELETE', `/workspaces/${id}`);
      }
      await h.deps.prisma.workspace.deleteMany({ where: { id: { in: workspaces } } });
      await h.deps.prisma.workspaceServer.deleteMany({ where: { id: { in: servers } } });
    } finally {
      await h.close();
    }
  });

  /** POST /workspaces as the test user (or `token`), constrained to this suite's servers unless the body says otherwise. */
  async function create(body: Record<string, unknown>, opts: { token?: string; wait?: boolean; key?: string } = {}) {
    const name = uniq('pe');
    const res = await h.call('POST', `/workspaces${opts.wait ? '?wait=true' : ''}`, {
      token: opts.token ?? h.userToken,
      body: { name, tier: 'free', constraints: { labels: { suite } }, ...body },
      headers: opts.key ? { 'idempotency-key': opts.key } : undefined,
    });
    const id = res.body?.workspace?.id ?? res.body?.details?.workspace?.id;
    if (id) workspaces.push(id);
    return { ...res, name };
  }
  const rowsNamed = (name: string) => h.deps.prisma.workspace.count({ where: { name } });
  /** The fleet's names, hostnames, ids and addresses a text shows: users must see none. */
  const leaks = (text: string) => fleet.flatMap((s) => [s.name, s.hostname, s.id, s.ipAddress.replace(/\/\d+$/, '')]).filter((x) => text.includes(x));
  const setServers = (data: { cordoned?: boolean; totalCpu?: number }) => h.deps.prisma.workspaceServer.updateMany({ where: { id: { in: servers } }, data });

  /** A 422 that names exactly `fields`, and no row. */
  async function expectUnsatisfiable(res: Awaited<ReturnType<typeof create>>, fields: string[]) {
    expect([res.status, res.body.error]).toEqual([422, 'unsatisfiable']);
    expect(res.body.details.fields.map((f: { field: string }) => f.field)).toEqual(fields);
    expect(res.body.message).toMatch(new RegExp(`^${fields[0].replace(/\./g, '\\.')}: `));
    expect(res.headers.get('retry-after')).toBeNull();
    expect(await rowsNamed(res.name)).toBe(0);
  }

  /** A 503 with Retry-After, the short reason, and no row. */
  async function expectNotNow(res: Awaited<ReturnType<typeof create>>) {
    expect([res.status, res.body.error, res.body.message]).toEqual([503, 'no_capacity', NO_CAPACITY]);
    expect(res.headers.get('retry-after')).toBe(String(PLACEMENT_RETRY_AFTER_SECONDS));
    expect(await rowsNamed(res.name)).toBe(0);
  }

  it('a label or region no server has is 422 naming the field; a user sees no server, an admin sees which lacked it', async () => {
    const label = await create({ constraints: { labels: { suite, 'perr-missing': 'yes' } } });
    await expectUnsatisfiable(label, ['constraints.labels.perr-missing']);
    expect(leaks(JSON.stringify(label.body))).toEqual([]);
    expect(label.body.details.detail).toBeUndefined();

    await expectUnsatisfiable(await create({ constraints: { labels: { suite }, region: `nowhere-${suite}` } }), ['constraints.region']);

    const asAdmin = await create({ constraints: { labels: { suite, 'perr-missing': 'yes' } } }, { token: h.adminToken });
    await expectUnsatisfiable(asAdmin, ['constraints.labels.perr-missing']);
    for (const s of fleet) expect(asAdmin.body.details.detail).toContain(`${s.name} (${s.hostname}): label perr-missing=yes missing`);
  });

  it('a GPU when no server has one is 422 naming constraints.gpu, with no row', async () => {
    const res = await create({ constraints: { labels: { suite }, gpu: { count: 1 } } });
    await expectUnsatisfiable(res, ['constraints.gpu']);
    expect(res.body.message).toBe('constraints.gpu: no server offers this many GPUs');
    expect(leaks(JSON.stringify(res.body))).toEqual([]);
  });

  it('a tier larger than every server is 422 naming tier, with no row', async () => {
    await setServers({ totalCpu: 1 });
    try {
      const res = await create({ tier: 'power' });
      await expectUnsatisfiable(res, ['tier']);
      expect(leaks(JSON.stringify(res.body))).toEqual([]);
    } finally {
      await setServers({ totalCpu: 32 });
    }
  });

  it('a pinned server id that does not exist is 422 naming server, with no row', async () => {
    const res = await create({ server: randomUUID() });
    await expectUnsatisfiable(res, ['server']);
    expect(res.body.details.fields[0].message).toBe('no such server');
    const asAdmin = await create({ server: randomUUID() }, { token: h.adminToken });
    await expectUnsatisfiable(asAdmin, ['server']);
  });

  it('every matching server cordoned, or one cordoned and the other in maintenance, is 503 with Retry-After, with no row', async () => {
    await setServers({ cordoned: true });
    try {
      const res = await create({});
      await expectNotNow(res);
      expect(leaks(JSON.stringify(res.body))).toEqual([]);
      const asAdmin = await create({}, { token: h.adminToken });
      await expectNotNow(asAdmin);
      for (const s of fleet) expect(asAdmin.body.details.detail).toContain(`${s.name} (${s.hostname}): cordoned`);

      await h.deps.prisma.workspaceServer.update({ where: { id: servers[0] }, data: { cordoned: false } });
      const window = await h.call('POST', `/servers/${servers[0]}/maintenance`, { body: { endsAt: new Date(Date.now() + 3_600_000).toISOString(), reason: 'placement errors test' } });
      expect(window.status).toBe(201);
      try {
        // Pinned or not: the server exists and will take workspaces again.
        await expectNotNow(await create({}));
        await expectNotNow(await create({ server: servers[0] }));
      } finally {
        await h.call('DELETE', `/servers/${servers[0]}/maintenance/${window.body.id}`);
      }
    } finally {
      await setServers({ cordoned: false });
    }
  });

  it('a full server (the other cordoned) is 503 with Retry-After, with no row; an admin sees that it is full', async () => {
    await setServers({ totalCpu: 1 });
    try {
      const filler = await create({ server: servers[0] }, { wait: true });
      expect(filler.status).toBe(201);
      await h.deps.prisma.workspaceServer.update({ where: { id: servers[1] }, data: { cordoned: true } });
      const res = await create({});
      await expectNotNow(res);
      const asAdmin = await create({}, { token: h.adminToken });
      await expectNotNow(asAdmin);
      expect(asAdmin.body.details.detail).toContain(`${fleet.find((s) => s.id === servers[0])!.hostname}): no capacity for the tier`);
      expect((await h.call('DELETE', `/workspaces/${filler.body.workspace.id}`, { token: h.userToken })).status).toBe(204);
    } finally {
      await setServers({ totalCpu: 32, cordoned: false });
    }
  });

  /**
   * The fleet changed between the API's check and the workflow's placement: the workspace was
   * accepted, its row is there (made here as the API makes it), and the workflow refuses. The same
   * request again (same Idempotency-Key) with ?wait=true runs that workflow and answers its reason.
   */
  async function acceptedEarlier(constraints: Prisma.InputJsonObject) {
    const key = uniq('perr-key');
    const id = idFromKey('test-user', key);
    const name = uniq('pe');
    await h.deps.prisma.workspace.create({ data: { id, ownerId: 'test-user', name, tier: 'free', strategy: 'SPREAD', constraints, status: 'pending' } });
    workspaces.push(id);
    return { id, key, name, constraints };
  }

  it('a workflow that finds nothing could ever take it keeps its reason; ?wait=true answers 422, never 502', async () => {
    const ws = await acceptedEarlier({ labels: { suite }, gpu: { count: 1 } });
    const res = await create({ name: ws.name, constraints: ws.constraints }, { wait: true, key: ws.key });
    expect([res.status, res.body.error, res.body.message]).toEqual([422, 'unsatisfiable', UNSATISFIABLE]);
    expect(res.body.details.workspace).toMatchObject({ id: ws.id, status: 'failed', statusReason: UNSATISFIABLE });
    expect(leaks(JSON.stringify(res.body))).toEqual([]);
    const stored = await h.deps.prisma.workspace.findUniqueOrThrow({ where: { id: ws.id } });
    expect(stored.statusReason).toMatch(/^unsatisfiable: .*needs 1 GPU\(s\), has 0/);
    expect((await h.call('GET', `/workspaces/${ws.id}`)).body.statusReason).toBe(stored.statusReason);
  });

  it('a workflow that finds no room now keeps its reason; ?wait=true answers 503 with Retry-After', async () => {
    const ws = await acceptedEarlier({ labels: { suite } });
    await setServers({ cordoned: true });
    try {
      const res = await create({ name: ws.name, constraints: ws.constraints }, { wait: true, key: ws.key });
      expect([res.status, res.body.error, res.body.message]).toEqual([503, 'no_capacity', NO_CAPACITY]);
      expect(res.headers.get('retry-after')).toBe(String(PLACEMENT_RETRY_AFTER_SECONDS));
      expect(res.body.details.workspace).toMatchObject({ id: ws.id, status: 'failed', statusReason: NO_CAPACITY });
      expect(leaks(JSON.stringify(res.body))).toEqual([]);
      expect((await h.deps.prisma.workspace.findUniqueOrThrow({ where: { id: ws.id } })).statusReason).toMatch(/^no capacity: .*cordoned/);
    } finally {
      await setServers({ cordoned: false });
    }
  });

  describe('POST /workspaces/:id/migrate', () => {
    /** A stopped workspace's record on servers[0]: the API refuses before any workflow runs, so no container is needed. */
    async function stoppedOnFirst(constraints: Prisma.InputJsonObject) {
      const w = await h.deps.prisma.workspace.create({ data: { ownerId: 'test-user', name: uniq('pe-mig'), tier: 'free', strategy: 'SPREAD', constraints, status: 'stopped', serverId: servers[0] } });
      workspaces.push(w.id);
      return w.id;
    }
    const noMigration = async (id: string) =>
      expect(h.client.workflow.getHandle(WORKFLOW_ID.migrateWorkspace(id)).describe()).rejects.toBeInstanceOf(WorkflowNotFoundError);

    it('a target server that does not exist is 422 naming targetServer; no migration starts', async () => {
      const id = await stoppedOnFirst({ labels: { suite } });
      const res = await h.call('POST', `/workspaces/${id}/migrate`, { body: { targetServer: randomUUID() } });
      expect([res.status, res.body.error]).toEqual([422, 'unsatisfiable']);
      expect(res.body.details.fields).toEqual([{ field: 'targetServer', message: 'no such server' }]);
      await noMigration(id);
    });

    it('constraints no other server meets are 422; the only other server cordoned is 503 with Retry-After', async () => {
      const gpu = await stoppedOnFirst({ labels: { suite }, gpu: { count: 1 } });
      const never = await h.call('POST', `/workspaces/${gpu}/migrate`, { body: {} });
      expect([never.status, never.body.error, never.body.details.fields]).toEqual([422, 'unsatisfiable', [{ field: 'constraints.gpu', message: 'no server offers this many GPUs' }]]);
      await noMigration(gpu);

      const id = await stoppedOnFirst({ labels: { suite } });
      await h.deps.prisma.workspaceServer.update({ where: { id: servers[1] }, data: { cordoned: true } });
      try {
        for (const body of [{}, { targetServer: servers[1] }]) {
          const res = await h.call('POST', `/workspaces/${id}/migrate`, { body });
          expect([res.status, res.body.error]).toEqual([503, 'no_capacity']);
          expect(res.headers.get('retry-after')).toBe(String(PLACEMENT_RETRY_AFTER_SECONDS));
          expect(res.body.details.detail).toMatch(/cordoned/);
        }
        await noMigration(id);
      } finally {
        await h.deps.prisma.workspaceServer.update({ where: { id: servers[1] }, data: { cordoned: false } });
      }
    });
  });
});
